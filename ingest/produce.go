package main

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Producer is the part of a Kafka client the consumer side needs: it waits for every record's fate
// (a record is done only once stored). kgo.Client satisfies it.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// AsyncProducer is the part of a Kafka client the HTTP side needs: it produces without waiting and
// reports each record's fate to promise. kgo.Client satisfies it.
type AsyncProducer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// produceWithin produces recs and waits until all of them are stored or ctx ends, whichever comes
// first. Unlike kgo's ProduceSync it returns when ctx ends even while a request is in flight to a
// broker that stopped answering (an idempotent producer cannot abandon such a record), so an HTTP
// caller is answered in time. A record still in flight then may yet be stored: a caller told to
// retry may deliver it twice, which the stable ids downstream absorb.
func produceWithin(ctx context.Context, out AsyncProducer, recs ...*kgo.Record) error {
	results := make(chan error, len(recs))
	for _, r := range recs {
		out.Produce(ctx, r, func(_ *kgo.Record, err error) { results <- err })
	}
	for range recs {
		select {
		case err := <-results:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
