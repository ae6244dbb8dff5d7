package phrasing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/posthog"
	"github.com/threadline/threadline/pkg/posthog/posthogtest"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// maskingRedactor is a tiny Redactor for tests: it masks emails, and drops query strings from URLs.
type maskingRedactor struct{}

var emailPattern = regexp.MustCompile(`[^\s@/:;"']+@[^\s@/:;"']+\.[A-Za-z]{2,}`)

func (maskingRedactor) Text(s string) string { return emailPattern.ReplaceAllString(s, "[email]") }

func (r maskingRedactor) URL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	return r.Text(s)
}

// hashIDs implements the identity hashing pkg/redact documents: an email becomes
// "h:"+hex(sha256(lower(trim(v)))), anything else stays.
func hashIDs() IdentityFuncs {
	hash := func(v string) string {
		sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(v))))
		return "h:" + hex.EncodeToString(sum[:])
	}
	return IdentityFuncs{
		Key: func(v string) string {
			if strings.Contains(v, "@") {
				return hash(v)
			}
			return v
		},
		Email: hash,
	}
}

func newPhraser(t testing.TB) *Phraser {
	t.Helper()
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(cfg, maskingRedactor{}, hashIDs())
}

// goldenAction is one line of the golden journey.
type goldenAction struct {
	ActionID string `json:"action_id"`
	Event    string `json:"event"`
	Kind     string `json:"kind"`
	Page     string `json:"page,omitempty"`
	Target   string `json:"target,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Text     string `json:"text"`
}

func phraseAll(t *testing.T, p *Phraser, msgs []posthogtest.Message) []messages.ProductAction {
	t.Helper()
	var out []messages.ProductAction
	for i, m := range msgs {
		evs, err := posthog.Decode(m.Value, m.Now)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		for _, ev := range evs {
			if a, ok := p.Action(ev); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

func golden(actions []messages.ProductAction) []goldenAction {
	var out []goldenAction
	for _, pa := range actions {
		a := pa.Action
		out = append(out, goldenAction{ActionID: a.ActionID, Event: a.Event, Kind: a.Kind, Page: a.Page, Target: a.Target, Detail: a.Detail, Text: a.Text})
	}
	return out
}

// TestJourneyGolden phrases the whole journey in every shape it reaches Threadline in; each shape must
// give exactly the golden actions.
func TestJourneyGolden(t *testing.T) {
	p := newPhraser(t)
	dir := posthogtest.Dir()
	shapes := append(posthogtest.Journey(t, dir), posthogtest.Encoded(t, dir)...)
	goldenPath := filepath.Join("testdata", "journey_actions.golden.json")

	reference := golden(phraseAll(t, p, shapes[0].Messages))
	if *update {
		b, err := json.MarshalIndent(reference, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var want []goldenAction
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for _, s := range shapes {
		t.Run(s.Name, func(t *testing.T) {
			got := golden(phraseAll(t, p, s.Messages))
			if len(got) != len(want) {
				t.Fatalf("%d actions, want %d:\n%s", len(got), len(want), texts(got))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("action %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
		})
	}
}

func texts(as []goldenAction) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(a.Text + "\n")
	}
	return b.String()
}

// TestConcurrentPhrasing phrases the journey from several goroutines at once with one Phraser, whose
// memos they share: every action is the one phrasing it alone gives (run it with -race).
func TestConcurrentPhrasing(t *testing.T) {
	shapes := posthogtest.Journey(t, posthogtest.Dir())
	want := golden(phraseAll(t, newPhraser(t), shapes[0].Messages))
	p := newPhraser(t)
	errs := make(chan string, len(shapes))
	for _, s := range shapes {
		go func() {
			var d posthog.Decoder
			var got []goldenAction
			for _, m := range s.Messages {
				evs, err := d.Decode(m.Value, m.Now)
				if err != nil {
					errs <- err.Error()
					return
				}
				for _, ev := range evs {
					if a, ok := p.Action(ev); ok {
						got = append(got, golden([]messages.ProductAction{a})...)
					}
				}
			}
			if len(got) != len(want) {
				errs <- s.Name + ": a different number of actions"
				return
			}
			for i := range got {
				if got[i] != want[i] {
					errs <- s.Name + ": " + got[i].Text + " != " + want[i].Text
					return
				}
			}
			errs <- ""
		}()
	}
	for range shapes {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
