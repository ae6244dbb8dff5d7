package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/threadline/threadline/pkg/kafka"
	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/notes"
)

// batchWriter records the batches it is given and refuses the message at failAt (when >= 0).
type batchWriter struct {
	batches [][]string // conversation ids per call
	failAt  int
	failErr error
}

func (b *batchWriter) EnqueueBatch(_ context.Context, cas []messages.ConversationActions) (int, error) {
	var ids []string
	for _, ca := range cas {
		ids = append(ids, ca.ConversationID)
	}
	b.batches = append(b.batches, ids)
	if b.failAt >= 0 && b.failAt < len(cas) {
		return b.failAt, b.failErr
	}
	return len(cas), nil
}

func (b *batchWriter) ExecuteSummary(context.Context, messages.ConversationSummary) error { return nil }

func (b *batchWriter) PostEvent(context.Context, messages.IntercomEvent, func(context.Context) error) (string, error) {
	return "", nil
}

func actionsRecord(t *testing.T, topic, conv string) *kgo.Record {
	t.Helper()
	b, err := json.Marshal(messages.ConversationActions{Version: messages.Version, ConversationID: conv, SessionID: "s1",
		Actions: []messages.Action{{ActionID: conv + "-a", SessionID: "s1", Kind: messages.KindClick, Text: "User clicked"}}})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Value: b}
}

func TestHandlerEnqueuesARunOfRecordsInOneBatch(t *testing.T) {
	topics := kafka.DefaultTopics()
	w := &batchWriter{failAt: -1}
	h := NewHandler(w, nil, topics)
	recs := []*kgo.Record{
		actionsRecord(t, topics.ConversationActions, "c1"),
		actionsRecord(t, topics.ConversationActions, "c2"),
		actionsRecord(t, topics.ConversationActions, "c3"),
	}
	if err := h.Handle(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if len(w.batches) != 1 || len(w.batches[0]) != 3 {
		t.Fatalf("batches %v, want one of three", w.batches)
	}
}

func TestHandlerReportsTheFirstRecordNotDone(t *testing.T) {
	topics := kafka.DefaultTopics()
	ctx := context.Background()

	// The writer refuses the second message: records[:1] are done, and the error classifies record 1.
	w := &batchWriter{failAt: 1, failErr: notes.ErrConversationGone}
	recs := []*kgo.Record{
		actionsRecord(t, topics.ConversationActions, "c1"),
		actionsRecord(t, topics.ConversationActions, "c2"),
		actionsRecord(t, topics.ConversationActions, "c3"),
	}
	err := NewHandler(w, nil, topics).Handle(ctx, recs)
	var re *kafka.RecordError
	if !errors.As(err, &re) || re.Index != 1 {
		t.Fatalf("err %v, want a RecordError at index 1", err)
	}
	if _, ok := kafka.IsPermanent(err); !ok {
		t.Errorf("a gone conversation is not permanent: %v", err)
	}

	// An undecodable record: the ones before it are enqueued, then it is reported.
	w = &batchWriter{failAt: -1}
	bad := &kgo.Record{Topic: topics.ConversationActions, Value: []byte("{")}
	err = NewHandler(w, nil, topics).Handle(ctx, []*kgo.Record{recs[0], recs[1], bad, recs[2]})
	if !errors.As(err, &re) || re.Index != 2 {
		t.Fatalf("err %v, want a RecordError at index 2", err)
	}
	if reason, ok := kafka.IsPermanent(err); !ok || reason != "decode" {
		t.Errorf("undecodable record: %v, want permanent decode", err)
	}
	if len(w.batches) != 1 || len(w.batches[0]) != 2 {
		t.Errorf("batches %v, want the two records before the bad one", w.batches)
	}
}
