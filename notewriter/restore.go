package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/notes"
)

// Errors of the restore.
var (
	// ErrRestoreCheckInterval is returned by RestoreConfig.Validate.
	ErrRestoreCheckInterval = errors.New("notewriter: restore.check-interval must be positive")
	// ErrStateLost is returned by Restorer.Watch when Redis lost the note writer's delivery record
	// while the notewriter ran: the process stops, so that its restart restores the record before
	// writing again.
	ErrStateLost = errors.New("notewriter: redis lost the delivery record (restore markers gone); restart to restore it from notes.written")
)

// RestoreConfig configures the restore of the note writer's delivery record from notes.written.
type RestoreConfig struct {
	// CheckInterval is how often a running notewriter checks that Redis still holds the record.
	CheckInterval time.Duration
}

// DefaultRestoreConfig returns the defaults RegisterFlags installs.
func DefaultRestoreConfig() RestoreConfig {
	return RestoreConfig{CheckInterval: 10 * time.Second}
}

// RegisterFlags registers the restore.* flags.
func (c *RestoreConfig) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultRestoreConfig()
	fs.DurationVar(&c.CheckInterval, "restore.check-interval", d.CheckInterval,
		"how often the notewriter checks that Redis still holds its delivery record (it exits when Redis lost it)")
}

// Validate checks the configuration.
func (c RestoreConfig) Validate() error {
	if c.CheckInterval <= 0 {
		return fmt.Errorf("%w: %s", ErrRestoreCheckInterval, c.CheckInterval)
	}
	return nil
}

// DeliveryRecord is what the restore needs of the note writer: its Redis-held record of what
// Intercom holds (notes.Writer implements it).
type DeliveryRecord interface {
	Restore(ctx context.Context, n messages.NoteWritten) (bool, error)
	Restored(ctx context.Context) (bool, error)
	MarkRestored(ctx context.Context) error
}

var _ DeliveryRecord = (*notes.Writer)(nil)

// Restore outcomes, as the restored-notes metric labels them.
const (
	restoreChanged = "restored" // the note was missing from Redis and is recorded now
	restoreKnown   = "known"    // Redis knew the note already
	restoreInvalid = "invalid"  // the record could not be decoded or restored; skipped
)

// Restore backoff bounds while Redis or Kafka fail.
const (
	restoreBackoffMin = 100 * time.Millisecond
	restoreBackoffMax = 5 * time.Second
	restoreProgress   = 5 * time.Second
)

// Restorer rebuilds the note writer's delivery record from notes.written before the notewriter
// does anything else, and watches that Redis keeps it.
//
// A pass reads every partition of notes.written from its first record to the end offset listed
// when the pass starts, outside any consumer group (every replica reads the whole topic, so no
// replica writes before the record of all conversations is back), and hands each note to Restore.
// Notes written meanwhile are recorded by the writer itself. Then the restore markers are set.
// A partition counts as read once the record (or transaction marker) just before its end arrived;
// notes.written is produced without transactions, so no aborted records hide its end.
type Restorer struct {
	cfg    RestoreConfig
	kcfg   kafka.Config
	topic  string
	record DeliveryRecord
	log    *zap.Logger

	done  atomic.Bool
	notes *prometheus.CounterVec // result
}

// NewRestorer builds a restorer of record from topic (notes.written) on the cluster of kcfg.
// Metrics are registered on reg.
func NewRestorer(cfg RestoreConfig, kcfg kafka.Config, topic string, record DeliveryRecord, log *zap.Logger, reg prometheus.Registerer) (*Restorer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Restorer{
		cfg: cfg, kcfg: kcfg, topic: topic, record: record, log: log,
		notes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threadline", Subsystem: "notewriter", Name: "restored_notes_total",
			Help: "notes.written records read by the restore of the delivery record, by result (restored, known, invalid).",
		}, []string{"result"}),
	}
	if reg != nil {
		if err := reg.Register(r.notes); err != nil {
			return nil, fmt.Errorf("notewriter: register restore metrics: %w", err)
		}
	}
	return r, nil
}

// Ready is the readiness check of the restore: not ready until the pass is done (or was not needed).
func (r *Restorer) Ready(context.Context) error {
	if !r.done.Load() {
		return errors.New("restoring the delivery record from notes.written")
	}
	return nil
}

// RestoreIfNeeded runs a restore pass when replay is true (the notewriter replays its input) or
// when Redis does not hold the delivery record (a new or emptied Redis); otherwise it returns at
// once. It returns only when the pass completed, or with ctx's error.
func (r *Restorer) RestoreIfNeeded(ctx context.Context, replay bool) error {
	var restored bool
	if err := r.retry(ctx, "read the restore markers", func() error {
		var err error
		restored, err = r.record.Restored(ctx)
		return err
	}); err != nil {
		return err
	}
	switch {
	case replay:
		r.log.Info("replay requested: restoring the delivery record from notes.written first", zap.String("topic", r.topic))
	case !restored:
		r.log.Warn("redis does not hold the delivery record (new or emptied): restoring it from notes.written first", zap.String("topic", r.topic))
	default:
		r.done.Store(true)
		return nil
	}
	return r.Run(ctx)
}

// Run runs one restore pass and sets the restore markers.
func (r *Restorer) Run(ctx context.Context) error {
	start := time.Now()
	kcfg := r.kcfg
	kcfg.ClientID += "-restore"
	cl, err := kafka.NewClient(kcfg, r.log, nil,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // transaction markers count as read, so a partition's end is reached
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return fmt.Errorf("notewriter: restore: %w", err)
	}
	defer cl.Close()

	var (
		remaining map[int32]int64 // partition → offset the pass reads up to
		total     int64           // records (and transaction markers) in the pass
	)
	if err := r.retry(ctx, "list the offsets of "+r.topic, func() error {
		var err error
		remaining, total, err = r.plan(ctx, kadm.NewClient(cl), cl)
		return err
	}); err != nil {
		return err
	}
	var read, changed int64
	last := time.Now()
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fetches.EachError(func(topic string, p int32, err error) {
			r.log.Warn("restore: fetch failed; retrying", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		var handleErr error
		fetches.EachRecord(func(rec *kgo.Record) {
			if handleErr != nil {
				return
			}
			if !rec.Attrs.IsControl() {
				ok, err := r.restore(ctx, rec)
				if err != nil {
					handleErr = err
					return
				}
				read++
				if ok {
					changed++
				}
			}
			if end, ok := remaining[rec.Partition]; ok && rec.Offset+1 >= end {
				delete(remaining, rec.Partition)
			}
		})
		if handleErr != nil {
			return handleErr
		}
		if time.Since(last) >= restoreProgress {
			last = time.Now()
			r.log.Info("restoring the delivery record", zap.Int64("read", read), zap.Int64("of_about", total),
				zap.Int("partitions_left", len(remaining)))
		}
	}
	if err := r.retry(ctx, "set the restore markers", func() error { return r.record.MarkRestored(ctx) }); err != nil {
		return err
	}
	r.done.Store(true)
	r.log.Info("delivery record restored from notes.written", zap.Int64("records", read), zap.Int64("restored", changed),
		zap.Duration("took", time.Since(start)))
	return nil
}

// plan lists where each partition of the topic starts and ends, starts consuming those with
// records, and returns their end offsets and how many offsets lie before them.
func (r *Restorer) plan(ctx context.Context, adm *kadm.Client, cl *kgo.Client) (map[int32]int64, int64, error) {
	starts, err := adm.ListStartOffsets(ctx, r.topic)
	if err != nil {
		return nil, 0, err
	}
	// Under read_committed the end is the last stable offset, as the consumer loop measures lag.
	ends, err := adm.ListCommittedOffsets(ctx, r.topic)
	if err != nil {
		return nil, 0, err
	}
	if err := errors.Join(starts.Error(), ends.Error()); err != nil {
		return nil, 0, err
	}
	remaining := map[int32]int64{}
	from := map[int32]kgo.Offset{}
	var total int64
	starts.Each(func(s kadm.ListedOffset) {
		e, ok := ends.Lookup(s.Topic, s.Partition)
		if ok && e.Offset > s.Offset {
			remaining[s.Partition] = e.Offset
			from[s.Partition] = kgo.NewOffset().At(s.Offset)
			total += e.Offset - s.Offset
		}
	})
	if len(from) > 0 {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: from})
	}
	return remaining, total, nil
}

// restore hands one record to the delivery record, retrying transient failures; a record that
// can never be restored is counted and skipped. It reports whether the state changed.
func (r *Restorer) restore(ctx context.Context, rec *kgo.Record) (bool, error) {
	var n messages.NoteWritten
	if err := messages.Decode(rec.Value, &n); err != nil {
		r.skip(rec, err)
		return false, nil
	}
	var changed, skipped bool
	err := r.retry(ctx, "restore a note", func() error {
		var err error
		changed, err = r.record.Restore(ctx, n)
		if notes.IsPermanent(err) {
			skipped = true
			r.skip(rec, err)
			return nil
		}
		return err
	})
	switch {
	case err != nil:
		return false, err
	case skipped:
	case changed:
		r.notes.WithLabelValues(restoreChanged).Inc()
	default:
		r.notes.WithLabelValues(restoreKnown).Inc()
	}
	return changed, nil
}

func (r *Restorer) skip(rec *kgo.Record, err error) {
	r.notes.WithLabelValues(restoreInvalid).Inc()
	r.log.Warn("restore: skipping a notes.written record that cannot be restored", zap.String("topic", rec.Topic),
		zap.Int32("partition", rec.Partition), zap.Int64("offset", rec.Offset), zap.Error(err))
}

// retry runs fn until it succeeds or ctx ends, backing off between failures (Redis or Kafka down
// at start-up is waited out, not a reason to exit).
func (r *Restorer) retry(ctx context.Context, what string, fn func() error) error {
	backoff := restoreBackoffMin
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 1 || attempt%10 == 0 {
			r.log.Warn("restore: could not "+what+"; retrying", zap.Int("attempt", attempt), zap.Error(err))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, restoreBackoffMax)
	}
}

// Watch checks every CheckInterval that Redis still holds the delivery record, and returns
// ErrStateLost when it does not: Redis restarted empty or was flushed under the running
// notewriter, which must not write on without the record. It returns nil when ctx ends. A Redis
// that does not answer is not a loss; the writer itself backs off meanwhile.
func (r *Restorer) Watch(ctx context.Context) error {
	t := time.NewTicker(r.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ok, err := r.record.Restored(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				r.log.Debug("checking the restore markers failed", zap.Error(err))
			}
		case !ok:
			r.log.Error("redis lost the delivery record under the running notewriter; stopping so that the restart restores it",
				zap.String("topic", r.topic))
			return ErrStateLost
		}
	}
}
