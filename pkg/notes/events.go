package notes

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/pkg/messages"
)

// Outcomes of PostEvent, as counted.
const (
	EventPosted      = "posted"
	EventDuplicate   = "duplicate"
	EventUnknownUser = "unknown_user"
	EventNoUser      = "no_user"
)

// eventKey remembers that the data event of one rule and one action was posted.
func eventKey(ev messages.IntercomEvent) string {
	return "tl:nw:event:{" + ev.Rule + "}:" + ev.ActionID
}

// PostEvent posts one Intercom data event with post, under the same rate budget and the same
// workspace breaker as notes, at lower priority: while the budget is tight, notes go first. An
// event already posted for the same rule and action is not posted again. A user Intercom does not
// know (404) is counted and dropped, and so is an event with no user Intercom could know; other
// errors are returned for the caller to retry.
func (w *Writer) PostEvent(ctx context.Context, ev messages.IntercomEvent, post func(context.Context) error) (string, error) {
	if ev.UserID == "" && ev.IntercomUserID == "" {
		w.m.events.WithLabelValues(EventNoUser).Inc()
		return EventNoUser, nil
	}
	key := eventKey(ev)
	done, err := w.rdb.Exists(ctx, key).Result()
	if err != nil {
		return "", fmt.Errorf("notes: event record: %w", err)
	}
	if done > 0 {
		w.m.events.WithLabelValues(EventDuplicate).Inc()
		return EventDuplicate, nil
	}
	err = w.callWithin(ctx, ev.WorkspaceID, "event", w.budget.waitLow, nil, post)
	switch {
	case errors.Is(err, ErrConversationGone): // for POST /events, 404 means the user is unknown
		w.m.events.WithLabelValues(EventUnknownUser).Inc()
		return EventUnknownUser, nil
	case err != nil:
		return "", err
	}
	if err := w.rdb.Set(ctx, key, 1, w.cfg.DeliveredTTL).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("notes: record event: %w", err)
	}
	w.m.events.WithLabelValues(EventPosted).Inc()
	return EventPosted, nil
}

func newEventsMetric() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "threadline_notes_data_events_total",
		Help: "Intercom data events from trigger rules, by outcome: posted, duplicate, unknown_user, no_user.",
	}, []string{"outcome"})
}
