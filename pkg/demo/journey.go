// Package demo owns the shared user journey (pricing → Pro plan → checkout → payment error →
// billing settings) as PostHog capture output, and plays it: verbatim for golden tests, or with
// fresh ids and current times for the dev stack and load generation.
package demo

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/posthog"
)

//go:embed journey.jsonl
var journeyData []byte

// The ids the recorded journey uses.
const (
	RecordedSessionID = "01959426-703f-7f3a-b1ec-ebbd1410ab41"
	RecordedAnonID    = "01959426-703e-763a-8dbe-41488fb87214"
	RecordedUserID    = "usr_2Qm8xK4p"
	RecordedEmail     = "jane.doe@example.com"
)

// IdentifyIndex is the position of the $identify event: the user is known from here on.
const IdentifyIndex = 8

// Event is one capture-output message of the journey.
type Event struct {
	UUID  string
	Name  string
	Time  time.Time // resolved event time
	Value []byte    // the events_plugin_ingestion message
}

// Journey is one user's session.
type Journey struct {
	SessionID, AnonID, UserID, Email string
	Events                           []Event
}

// Recorded returns the journey exactly as recorded.
func Recorded() (Journey, error) {
	j := Journey{SessionID: RecordedSessionID, AnonID: RecordedAnonID, UserID: RecordedUserID, Email: RecordedEmail}
	for i, line := range bytes.Split(bytes.TrimSpace(journeyData), []byte("\n")) {
		var head struct {
			UUID      string    `json:"uuid"`
			Event     string    `json:"event"`
			Timestamp time.Time `json:"timestamp"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return Journey{}, fmt.Errorf("demo: journey line %d: %w", i+1, err)
		}
		j.Events = append(j.Events, Event{UUID: head.UUID, Name: head.Event, Time: head.Timestamp, Value: append([]byte(nil), line...)})
	}
	return j, nil
}

// Fresh returns the journey with new ids (session, anonymous and user id, email, every event uuid)
// and its times moved so that the first event happens at start. speed > 1 compresses the gaps.
func Fresh(start time.Time, speed float64) (Journey, error) {
	suffix := randomHex(4)
	return Again(Journey{
		SessionID: posthog.NewUUIDv7(start), AnonID: posthog.NewUUIDv7(start),
		UserID: "usr_demo_" + suffix, Email: "user-" + suffix + "@example.com",
	}, start, speed)
}

// Again plays the journey once more as the same user in the same session (j's ids), with new event
// uuids, starting at start.
func Again(j Journey, start time.Time, speed float64) (Journey, error) {
	rec, err := Recorded()
	if err != nil {
		return Journey{}, err
	}
	if speed <= 0 {
		speed = 1
	}
	out := Journey{SessionID: j.SessionID, AnonID: j.AnonID, UserID: j.UserID, Email: j.Email}
	pairs := []string{RecordedSessionID, j.SessionID, RecordedAnonID, j.AnonID, RecordedUserID, j.UserID, RecordedEmail, j.Email}
	for _, ev := range rec.Events {
		pairs = append(pairs, ev.UUID, posthog.NewUUIDv7(start))
	}
	ids := strings.NewReplacer(pairs...)
	first := rec.Events[0].Time
	for _, ev := range rec.Events {
		at := start.Add(time.Duration(float64(ev.Time.Sub(first)) / speed)).UTC()
		var msg map[string]any
		if err := json.Unmarshal([]byte(ids.Replace(string(ev.Value))), &msg); err != nil {
			return Journey{}, fmt.Errorf("demo: rewrite %s: %w", ev.UUID, err)
		}
		ts := at.Format("2006-01-02T15:04:05.000Z07:00")
		msg["timestamp"], msg["now"], msg["sent_at"] = ts, ts, ts
		value, err := json.Marshal(msg)
		if err != nil {
			return Journey{}, err
		}
		out.Events = append(out.Events, Event{UUID: msg["uuid"].(string), Name: ev.Name, Time: at, Value: value})
	}
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
