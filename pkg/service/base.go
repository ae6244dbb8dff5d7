package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/admin"
	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/logging"
	"github.com/threadline/threadline/pkg/redisclient"
)

// Base is the configuration every binary shares: logging, the admin server, Kafka, topic names,
// its consumer group, Redis and the process's soft memory limit.
type Base struct {
	Log      logging.Config
	Admin    admin.Config
	Kafka    kafka.Config
	Topics   kafka.Topics
	Consumer kafka.ConsumerConfig
	Redis    redisclient.Config
	// MemoryLimitMiB is the Go runtime's soft memory limit (0: none); GOMEMLIMIT, when set, wins.
	MemoryLimitMiB int
}

// DefaultMemoryLimitMiB keeps a service's heap, which grows with the records it buffers and the
// batches they were decompressed from, within a small container: the garbage collector works
// harder near the limit instead of letting the heap double.
const DefaultMemoryLimitMiB = 128

// ErrMemoryLimit is returned for a negative memory limit.
var ErrMemoryLimit = errors.New("service: memory limit must be 0 (none) or a number of MiB")

// RegisterFlags registers the shared flags with the service's admin port and consumer group.
func (b *Base) RegisterFlags(fs *flag.FlagSet, defaultAdminAddr, defaultGroup string) {
	b.Log.RegisterFlags(fs)
	b.Admin.RegisterFlags(fs, defaultAdminAddr)
	b.Kafka.RegisterFlags(fs)
	b.Topics = kafka.DefaultTopics()
	b.Topics.RegisterFlags(fs)
	b.Consumer.RegisterFlags(fs, defaultGroup)
	b.Redis.RegisterFlags(fs)
	fs.IntVar(&b.MemoryLimitMiB, "memory-limit-mib", DefaultMemoryLimitMiB,
		"soft memory limit of the Go runtime in MiB, 0 for none (GOMEMLIMIT, when set, wins)")
}

// Validate checks every shared component.
func (b Base) Validate() error {
	var mem error
	if b.MemoryLimitMiB < 0 {
		mem = fmt.Errorf("%w: %d", ErrMemoryLimit, b.MemoryLimitMiB)
	}
	return errors.Join(b.Log.Validate(), b.Admin.Validate(), b.Kafka.Validate(), b.Topics.Validate(),
		b.Consumer.Validate(), b.Redis.Validate(), mem)
}

// applyMemoryLimit sets the runtime's soft memory limit, unless GOMEMLIMIT already did, and
// returns the limit in force in bytes (math.MaxInt64: none).
func (b Base) applyMemoryLimit() int64 {
	if os.Getenv("GOMEMLIMIT") == "" && b.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(b.MemoryLimitMiB) << 20)
	}
	return debug.SetMemoryLimit(-1)
}

// Deps are the connections built from Base.
type Deps struct {
	Log      *zap.Logger
	Admin    *admin.Server
	Redis    redis.UniversalClient
	Producer *kgo.Client
}

// Open builds the logger, admin server, Redis client and a producing Kafka client, and creates
// the topics the service touches when they are missing.
func (b Base) Open(ctx context.Context, name string, topics ...string) (*Deps, error) {
	log, err := logging.New(b.Log, name)
	if err != nil {
		return nil, err
	}
	log.Info("soft memory limit", zap.Int64("bytes", b.applyMemoryLimit()))
	adm := admin.New(b.Admin, log)
	if err := adm.Listen(); err != nil {
		return nil, err
	}
	rdb, err := redisclient.New(b.Redis)
	if err != nil {
		return nil, err
	}
	adm.AddReadiness("redis", redisclient.Ping(rdb))
	producer, err := kafka.NewClient(b.Kafka, log, adm.Registry)
	if err != nil {
		return nil, fmt.Errorf("%s: kafka client: %w", name, err)
	}
	if err := kafka.EnsureTopics(ctx, producer, b.Kafka, append(topics, b.Topics.DLQ)...); err != nil {
		producer.Close()
		return nil, fmt.Errorf("%s: ensure topics: %w", name, err)
	}
	return &Deps{Log: log, Admin: adm, Redis: rdb, Producer: producer}, nil
}

// Close releases the connections.
func (d *Deps) Close() {
	d.Producer.Close()
	_ = d.Redis.Close()
	_ = d.Log.Sync()
}

// Consume builds the service's consumer on topics with the shared settings, registers its
// readiness, and returns it ready to Run.
func (b Base) Consume(d *Deps, name string, topics []string, h kafka.Handler) (*kafka.Consumer, error) {
	c, err := kafka.NewConsumer(b.Consumer, b.Kafka, name, topics, b.Topics.DLQ, h, d.Log, d.Admin.Registry)
	if err != nil {
		return nil, fmt.Errorf("%s: consumer: %w", name, err)
	}
	d.Admin.AddReadiness("consumer", func(context.Context) error {
		if !c.Ready() {
			return errors.New("consumer not caught up")
		}
		return nil
	})
	return c, nil
}
