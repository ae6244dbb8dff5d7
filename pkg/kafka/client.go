package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// MetricsNamespace is the Prometheus namespace of every metric this package registers.
const MetricsNamespace = "threadline"

// clientMetricsSubsystem is the subsystem of the franz-go client metrics (kprom); clients are told
// apart by their client_id label.
const clientMetricsSubsystem = "kafka"

// NewClient returns a franz-go client for cfg: seed brokers, client id, SASL and TLS, logging
// through log (kzap) and, when reg is not nil, client metrics registered on reg (kprom,
// threadline_kafka_*, labelled client_id). opts come last and override anything set here, so a
// caller adds consumer or producer options (or a different kgo.ClientID) to the same setup.
//
// Give each client of one process its own client id: the client metrics of a second client
// with the same id are not registered (a warning says so). They are unregistered when the
// client is closed.
func NewClient(cfg Config, log *zap.Logger, reg prometheus.Registerer, opts ...kgo.Opt) (*kgo.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.WithLogger(kzap.New(log.Named("kgo"), kzap.Level(clientLogLevel(log)))),
	}
	if cfg.tlsOn() {
		tc, err := cfg.tlsConfig()
		if err != nil {
			return nil, err
		}
		base = append(base, kgo.DialTLSConfig(tc))
	}
	if cfg.SASLMechanism != "" {
		mech, err := cfg.saslMechanism()
		if err != nil {
			return nil, err
		}
		base = append(base, kgo.SASL(mech))
		if !cfg.tlsOn() {
			log.Warn("kafka SASL is configured without TLS: credentials and data travel unencrypted",
				zap.String("mechanism", cfg.SASLMechanism))
		}
	}
	if reg != nil {
		base = append(base, kgo.WithHooks(kprom.NewMetrics(MetricsNamespace,
			kprom.Registerer(lenientRegisterer{reg: reg, log: log}),
			kprom.Subsystem(clientMetricsSubsystem),
			kprom.WithClientLabel(),
		)))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: new client for %v: %w", cfg.Brokers, err)
	}
	return cl, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLSInsecureSkipVerify} //nolint:gosec // opt-in, for testing
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: read TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: TLS CA file %q holds no PEM certificate", c.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		pair, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: load TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

func (c Config) saslMechanism() (sasl.Mechanism, error) {
	user, pass := c.SASLUser, c.SASLPassword.Reveal()
	switch strings.ToLower(c.SASLMechanism) {
	case SASLPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case SASLScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("%w: %q", ErrSASLMechanism, c.SASLMechanism)
}

// lenientRegisterer registers collectors on reg and reports, instead of panicking on, a
// collector that is already registered: client metrics must never stop a client from starting.
type lenientRegisterer struct {
	reg prometheus.Registerer
	log *zap.Logger
}

func (r lenientRegisterer) Register(c prometheus.Collector) error {
	err := r.reg.Register(c)
	if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
		r.log.Warn("kafka client metrics already registered; give each client its own client id", zap.Error(err))
		return nil
	}
	return err
}

func (r lenientRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			r.log.Error("kafka client metrics not registered", zap.Error(err))
		}
	}
}

func (r lenientRegisterer) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// EnsureTopics creates those of topics that do not exist yet, with cfg.TopicPartitions
// partitions and cfg.TopicReplication replicas. A topic another process created meanwhile is
// not an error. It does nothing when cfg.CreateTopics is false (topics are then managed
// outside Threadline).
func EnsureTopics(ctx context.Context, cl *kgo.Client, cfg Config, topics ...string) error {
	if !cfg.CreateTopics {
		return nil
	}
	var want []string
	for _, t := range topics {
		if t != "" && !slices.Contains(want, t) {
			want = append(want, t)
		}
	}
	if len(want) == 0 {
		return nil
	}
	if cfg.TopicPartitions < 1 {
		return fmt.Errorf("%w: %d", ErrTopicPartitions, cfg.TopicPartitions)
	}
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, want...)
	if err != nil {
		return fmt.Errorf("kafka: list topics %v: %w", want, err)
	}
	var missing []string
	for _, t := range want {
		d, ok := details[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			missing = append(missing, t)
			continue
		}
		if d.Err != nil {
			return fmt.Errorf("kafka: describe topic %q: %w", t, d.Err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	resps, err := adm.CreateTopics(ctx, int32(cfg.TopicPartitions), int16(cfg.TopicReplication), nil, missing...)
	if err != nil {
		return fmt.Errorf("kafka: create topics %v: %w", missing, err)
	}
	var errs []error
	for _, t := range missing {
		r, ok := resps[t]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("kafka: create topic %q: no answer from the broker", t))
		case r.Err == nil, errors.Is(r.Err, kerr.TopicAlreadyExists):
		default:
			errs = append(errs, fmt.Errorf("kafka: create topic %q: %w %s", t, r.Err, r.ErrMessage))
		}
	}
	return errors.Join(errs...)
}

// clientLogLevel keeps franz-go's own chatter (group joins, metadata) out of the logs unless the
// service logs at debug level; warnings and errors always show.
func clientLogLevel(log *zap.Logger) kgo.LogLevel {
	if log.Core().Enabled(zap.DebugLevel) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelWarn
}
