package demo

import (
	"strings"
	"testing"
	"time"
)

func TestRecordedJourneyHasNineteenEventsInTimeOrder(t *testing.T) {
	j, err := Recorded()
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Events) != 19 {
		t.Fatalf("events = %d, want 19", len(j.Events))
	}
	if j.Events[IdentifyIndex].Name != "$identify" {
		t.Fatalf("event %d is %s, want $identify", IdentifyIndex, j.Events[IdentifyIndex].Name)
	}
	for i := 1; i < len(j.Events); i++ {
		if j.Events[i].Time.Before(j.Events[i-1].Time) {
			t.Fatalf("event %d goes back in time", i)
		}
	}
}

func TestFreshJourneyReplacesEveryRecordedIdAndMovesTime(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	j, err := Fresh(start, 2)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := Recorded()
	for i, ev := range j.Events {
		s := string(ev.Value)
		for _, old := range []string{RecordedSessionID, RecordedAnonID, RecordedUserID, RecordedEmail, rec.Events[i].UUID} {
			if strings.Contains(s, old) {
				t.Fatalf("event %d still contains %q", i, old)
			}
		}
		if !strings.Contains(s, j.SessionID) {
			t.Fatalf("event %d lacks the new session id", i)
		}
	}
	if !j.Events[0].Time.Equal(start) {
		t.Fatalf("first event at %s, want %s", j.Events[0].Time, start)
	}
	recSpan := rec.Events[18].Time.Sub(rec.Events[0].Time)
	if got := j.Events[18].Time.Sub(j.Events[0].Time); got != recSpan/2 {
		t.Fatalf("span %s, want %s", got, recSpan/2)
	}
	other, _ := Fresh(start, 2)
	if other.SessionID == j.SessionID || other.UserID == j.UserID {
		t.Fatal("two fresh journeys share ids")
	}
}

func TestAgainKeepsTheUserAndSessionButNotTheEventIds(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	j, err := Fresh(start, 1)
	if err != nil {
		t.Fatal(err)
	}
	k, err := Again(j, start.Add(time.Minute), 1)
	if err != nil {
		t.Fatal(err)
	}
	if k.SessionID != j.SessionID || k.UserID != j.UserID || k.AnonID != j.AnonID {
		t.Fatal("Again changed the user or session")
	}
	for i := range k.Events {
		if k.Events[i].UUID == j.Events[i].UUID {
			t.Fatalf("event %d kept its uuid", i)
		}
		if !strings.Contains(string(k.Events[i].Value), j.SessionID) {
			t.Fatalf("event %d is not in the session", i)
		}
	}
	if !k.Events[0].Time.Equal(start.Add(time.Minute)) {
		t.Fatalf("second pass starts at %s", k.Events[0].Time)
	}
}
