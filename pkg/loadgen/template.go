package loadgen

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/demo"
	"github.com/threadline/threadline/pkg/posthog"
)

// timeLayout is how capture output writes times (and how demo.Again writes them).
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Slots of a journey template: the ids of the user, the event's time, then one per event uuid.
const (
	slotLiteral = iota - 1
	slotSession
	slotAnon
	slotUser
	slotEmail
	slotTime
	slotUUID // slotUUID+k is the uuid of recorded event k
)

// piece is a literal run of a recorded event, or a slot filled in when a pass is rendered.
type piece struct {
	lit  string
	slot int
}

// journeyTemplate is the recorded journey cut at every id, event uuid and time field, so that a
// pass renders by concatenation. A rendered pass is what demo.Again returns for the same ids,
// start and speed (the same JSON values; demo.Again re-encodes the JSON, which costs far more
// than the pipeline's own work per event would allow at load-test rates).
type journeyTemplate struct {
	names   []string
	offsets []time.Duration // from the first event, as recorded
	events  [][]piece
	sizes   []int // room for a rendered event: the recorded size and a margin for longer ids
}

func newJourneyTemplate() (*journeyTemplate, error) {
	rec, err := demo.Recorded()
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	ids := []struct {
		value string
		slot  int
	}{{rec.SessionID, slotSession}, {rec.AnonID, slotAnon}, {rec.UserID, slotUser}, {rec.Email, slotEmail}}
	for k, ev := range rec.Events {
		ids = append(ids, struct {
			value string
			slot  int
		}{ev.UUID, slotUUID + k})
	}
	t := &journeyTemplate{}
	first := rec.Events[0].Time
	for i, ev := range rec.Events {
		value := string(ev.Value)
		type cut struct{ at, n, slot int }
		var cuts []cut
		for _, id := range ids {
			for from := 0; ; {
				j := strings.Index(value[from:], id.value)
				if j < 0 {
					break
				}
				cuts = append(cuts, cut{from + j, len(id.value), id.slot})
				from += j + len(id.value)
			}
		}
		var head map[string]json.RawMessage
		if err := json.Unmarshal(ev.Value, &head); err != nil {
			return nil, fmt.Errorf("loadgen: journey event %d: %w", i, err)
		}
		for _, field := range []string{"timestamp", "now", "sent_at"} {
			raw, ok := head[field]
			if !ok {
				return nil, fmt.Errorf("loadgen: journey event %d has no %s", i, field)
			}
			key := `"` + field + `":` + string(raw)
			j := strings.Index(value, key)
			if j < 0 || strings.Contains(value[j+1:], key) {
				return nil, fmt.Errorf("loadgen: journey event %d: %s is not written once as %s", i, field, key)
			}
			// the slot replaces the value inside the quotes
			cuts = append(cuts, cut{j + len(`"`+field+`":"`), len(raw) - 2, slotTime})
		}
		slices.SortFunc(cuts, func(a, b cut) int { return a.at - b.at })
		var pieces []piece
		pos := 0
		for _, c := range cuts {
			if c.at < pos {
				return nil, fmt.Errorf("loadgen: journey event %d: overlapping ids at %d", i, c.at)
			}
			if c.at > pos {
				pieces = append(pieces, piece{lit: value[pos:c.at], slot: slotLiteral})
			}
			pieces = append(pieces, piece{slot: c.slot})
			pos = c.at + c.n
		}
		if pos < len(value) {
			pieces = append(pieces, piece{lit: value[pos:], slot: slotLiteral})
		}
		t.events = append(t.events, pieces)
		t.sizes = append(t.sizes, len(value)+256)
		t.names = append(t.names, ev.Name)
		t.offsets = append(t.offsets, ev.Time.Sub(first))
	}
	return t, nil
}

// freshUser returns new ids for a user and session, in the formats demo.Fresh uses.
func freshUser(start time.Time) demo.Journey {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	return demo.Journey{
		SessionID: posthog.NewUUIDv7(start), AnonID: posthog.NewUUIDv7(start),
		UserID: "usr_load_" + suffix, Email: "user-" + suffix + "@example.com",
	}
}

// render plays the journey once more as user (its ids), with new event uuids, the first event at
// start, the gaps divided by speed.
func (t *journeyTemplate) render(user demo.Journey, start time.Time, speed float64) demo.Journey {
	out := demo.Journey{SessionID: user.SessionID, AnonID: user.AnonID, UserID: user.UserID, Email: user.Email,
		Events: make([]demo.Event, len(t.events))}
	uuids := make([]string, len(t.events))
	for k := range uuids {
		uuids[k] = posthog.NewUUIDv7(start)
	}
	for i, pieces := range t.events {
		at := start.Add(time.Duration(float64(t.offsets[i]) / speed)).UTC()
		ts := at.Format(timeLayout)
		b := make([]byte, 0, t.sizes[i])
		for _, p := range pieces {
			switch p.slot {
			case slotLiteral:
				b = append(b, p.lit...)
			case slotSession:
				b = append(b, user.SessionID...)
			case slotAnon:
				b = append(b, user.AnonID...)
			case slotUser:
				b = append(b, user.UserID...)
			case slotEmail:
				b = append(b, user.Email...)
			case slotTime:
				b = append(b, ts...)
			default:
				b = append(b, uuids[p.slot-slotUUID]...)
			}
		}
		out.Events[i] = demo.Event{UUID: uuids[i], Name: t.names[i], Time: at, Value: b}
	}
	return out
}
