package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Stages of an action on its way to a note, each measured from the end of the one before.
const (
	StageIngest     = "ingest: event time → on product.actions"
	StageLinker     = "linker: product.actions → conversation.actions"
	StageNotewriter = "notewriter: conversation.actions → note stored"
)

// StageOrder lists the stages in pipeline order.
func StageOrder() []string { return []string{StageIngest, StageLinker, StageNotewriter} }

// stageWatcher reads product.actions and conversation.actions as the run goes and remembers
// when each action left ingest and when it left the linker: the timestamps of the records,
// which the producing client sets when it is handed them.
type stageWatcher struct {
	client        *kgo.Client
	cancel        context.CancelFunc
	done          chan struct{}
	product, conv string

	mu       sync.Mutex
	ingested map[string]time.Time
	linked   map[string]time.Time
	records  map[string]int // per topic
}

func watchStages(ctx context.Context, brokers []string, productTopic, convTopic string) (*stageWatcher, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(productTopic, convTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("bench: stage watcher: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &stageWatcher{client: cl, cancel: cancel, done: make(chan struct{}), product: productTopic, conv: convTopic,
		ingested: map[string]time.Time{}, linked: map[string]time.Time{}, records: map[string]int{}}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(w.add)
		}
	}()
	return w, nil
}

func (w *stageWatcher) add(r *kgo.Record) {
	var ids []string
	switch r.Topic {
	case w.product:
		var pa struct {
			Action struct {
				ActionID string `json:"action_id"`
			} `json:"action"`
		}
		if json.Unmarshal(r.Value, &pa) == nil {
			ids = append(ids, pa.Action.ActionID)
		}
	case w.conv:
		var ca struct {
			Actions []struct {
				ActionID string `json:"action_id"`
			} `json:"actions"`
		}
		if json.Unmarshal(r.Value, &ca) == nil {
			for _, a := range ca.Actions {
				ids = append(ids, a.ActionID)
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.records[r.Topic]++
	m := w.ingested
	if r.Topic == w.conv {
		m = w.linked
	}
	for _, id := range ids {
		if _, seen := m[id]; !seen {
			m[id] = r.Timestamp
		}
	}
}

// times returns when the action was put on product.actions and on conversation.actions.
func (w *stageWatcher) times(actionID string) (ingested, linked time.Time, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ingested, ok1 := w.ingested[actionID]
	linked, ok2 := w.linked[actionID]
	return ingested, linked, ok1 && ok2
}

// read returns how many records of topic the watcher has read.
func (w *stageWatcher) read(topic string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.records[topic]
}

func (w *stageWatcher) close() {
	w.cancel()
	<-w.done
	w.client.Close()
}
