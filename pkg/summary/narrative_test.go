package summary

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/threadline/threadline/pkg/messages"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var goldenJourneys = []struct {
	name    string
	actions func(testing.TB) []messages.Action
}{
	{"checkout_payment_error", checkoutJourney},
	{"successful_purchase", purchaseJourney},
	{"onboarding_drop_off", onboardingJourney},
	{"repeated_error_loop", errorLoopJourney},
	{"long_browsing_session", browsingJourney},
}

func TestNarrativeGolden(t *testing.T) {
	for _, j := range goldenJourneys {
		t.Run(j.name, func(t *testing.T) {
			res, err := NewNarrative().Summarize(context.Background(), Input{ConversationID: "conv-1", Actions: j.actions(t)})
			if err != nil {
				t.Fatalf("Summarize: %v", err)
			}
			if res.Engine != EngineNarrative {
				t.Errorf("Engine = %q, want %q", res.Engine, EngineNarrative)
			}
			golden := filepath.Join("testdata", j.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(res.Text+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run go test -update to create it): %v", err)
			}
			if got := res.Text + "\n"; got != string(want) {
				t.Errorf("summary differs from %s\n got: %s\nwant: %s", golden, got, want)
			}
		})
	}
}

// The shared journey must say at least what the seed's example says: the pricing page, the Pro
// plan, the checkout form, the payment validation error, and billing settings; and it must make
// the frustration and the time span plain.
func TestNarrativeCoversTheSeedExample(t *testing.T) {
	res, err := NewNarrative().Summarize(context.Background(), Input{Actions: checkoutJourney(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, phrase := range []string{
		"opened the pricing page",
		"selected the Pro plan",
		"submitted the checkout form",
		"hit a payment validation error (incorrect number; card validation failed)",
		"rage-clicked Pay $49.00",
		"clicked Update payment method but nothing happened",
		"billing settings page",
		"Over 52 seconds (10:15:02 to 10:15:54 UTC)",
	} {
		if !strings.Contains(res.Text, phrase) {
			t.Errorf("summary lacks %q:\n%s", phrase, res.Text)
		}
	}
	// It ends with where the user was last: the billing settings page, which they left.
	if !strings.HasSuffix(res.Text, "They were last seen on the billing settings page, which they left at 10:15:54 UTC.") {
		t.Errorf("summary does not end with where the user is:\n%s", res.Text)
	}
	// Signing in is not something the user set out to do; the navigation link is said by the arrival.
	for _, absent := range []string{"signed in", "Go to billing settings"} {
		if strings.Contains(res.Text, absent) {
			t.Errorf("summary mentions %q:\n%s", absent, res.Text)
		}
	}
}

// Replays deliver actions twice and partitions may interleave: the summary depends only on the
// set of actions, not on their order or duplicates.
func TestNarrativeIgnoresOrderAndReplays(t *testing.T) {
	n := NewNarrative()
	want, err := n.Summarize(context.Background(), Input{Actions: checkoutJourney(t)})
	if err != nil {
		t.Fatal(err)
	}
	actions := checkoutJourney(t)
	shuffled := append([]messages.Action(nil), actions...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	// Same-second actions keep their relative order in a real partition; restore it for those.
	sort.SliceStable(shuffled, func(i, j int) bool { return shuffled[i].ActionID < shuffled[j].ActionID })
	replayed := append(append([]messages.Action(nil), shuffled...), actions[3:9]...)
	got, err := n.Summarize(context.Background(), Input{Actions: replayed})
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != want.Text {
		t.Errorf("replayed input changed the summary\n got: %s\nwant: %s", got.Text, want.Text)
	}
}

// With the previous summary's actions known, the summary covers the whole session exactly as if
// it were written in one go, whatever the overlap between the two lists.
func TestNarrativeWithPreviousActionsCoversWholeSession(t *testing.T) {
	n := NewNarrative()
	all := checkoutJourney(t)
	whole, err := n.Summarize(context.Background(), Input{Actions: all})
	if err != nil {
		t.Fatal(err)
	}
	for _, split := range []int{1, 5, 9, len(all) - 1} {
		got, err := n.Summarize(context.Background(), Input{
			Previous:        "an older summary that is replaced",
			PreviousActions: all[:split+1], // one action of overlap
			Actions:         all[split:],
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Text != whole.Text {
			t.Errorf("split at %d:\n got: %s\nwant: %s", split, got.Text, whole.Text)
		}
	}
}

// Without the previous actions, the summary continues the previous text: its closing "where the
// user is" sentence is replaced by what happened since.
func TestNarrativeContinuesPreviousSummary(t *testing.T) {
	n := NewNarrative()
	first, err := n.Summarize(context.Background(), Input{Actions: checkoutJourney(t)})
	if err != nil {
		t.Fatal(err)
	}
	later := journey(t, "sess-checkout", "2025-03-04",
		journeyStep{at: "10:16:30", kind: messages.KindPageview, page: "billing settings page"},
		journeyStep{at: "10:16:41", kind: messages.KindClick, page: "billing settings page", target: "Add card button"},
		journeyStep{at: "10:16:42", kind: messages.KindPageview, page: "add card page"},
	)
	for i := range later {
		later[i].ActionID = fmt.Sprintf("later-%d", i)
	}
	got, err := n.Summarize(context.Background(), Input{Previous: first.Text, Actions: later})
	if err != nil {
		t.Fatal(err)
	}
	kept := strings.TrimSuffix(first.Text, " They were last seen on the billing settings page, which they left at 10:15:54 UTC.")
	if !strings.HasPrefix(got.Text, kept+" Since then, over 12 seconds (10:16:30 to 10:16:42 UTC), they opened the billing settings page") {
		t.Errorf("continuation does not build on the previous summary:\n%s", got.Text)
	}
	if strings.Contains(got.Text, "which they left at 10:15:54") {
		t.Errorf("continuation keeps the stale closing sentence:\n%s", got.Text)
	}
	if !strings.HasSuffix(got.Text, "They are now on the add card page.") {
		t.Errorf("continuation does not end with where the user is now:\n%s", got.Text)
	}
}

func TestNarrativeNothingToSummarize(t *testing.T) {
	n := NewNarrative()
	if _, err := n.Summarize(context.Background(), Input{ConversationID: "c"}); !errors.Is(err, ErrNothingToSummarize) {
		t.Errorf("empty input: err = %v, want ErrNothingToSummarize", err)
	}
	res, err := n.Summarize(context.Background(), Input{Previous: "  The user opened the pricing page.  "})
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "The user opened the pricing page." {
		t.Errorf("no new actions: text = %q, want the previous summary", res.Text)
	}
}

func TestNarrativeSmallSessions(t *testing.T) {
	tests := []struct {
		name  string
		steps []journeyStep
		want  string
	}{
		{"one page", []journeyStep{
			{at: "10:00:00", kind: messages.KindPageview, page: "pricing page"},
		}, "At 10:00:00 UTC, the user opened the pricing page, where they are now."},
		{"one page left", []journeyStep{
			{at: "10:00:00", kind: messages.KindPageview, page: "pricing page"},
			{at: "10:00:09", kind: messages.KindPageleave, page: "pricing page"},
		}, "Over 9 seconds (10:00:00 to 10:00:09 UTC), the user opened the pricing page and left it at 10:00:09 UTC."},
		{"mid-page start", []journeyStep{
			{at: "10:00:00", kind: messages.KindClick, page: "docs page", target: "Copy code button"},
		}, "At 10:00:00 UTC, the user was on the docs page and clicked Copy code. They are now on the docs page."},
		{"sign-in only", []journeyStep{
			{at: "10:00:00", kind: messages.KindIdentify},
		}, "At 10:00:00 UTC, the user signed in."},
		{"selection off a pricing page", []journeyStep{
			{at: "10:00:00", kind: messages.KindPageview, page: "appearance settings page"},
			{at: "10:00:04", kind: messages.KindClick, page: "appearance settings page", target: "Choose dark theme button"},
		}, "Over 4 seconds (10:00:00 to 10:00:04 UTC), the user opened the appearance settings page and selected dark theme. They are now on the appearance settings page."},
		{"repeated errors and reloads", []journeyStep{
			{at: "10:00:00", kind: messages.KindPageview, page: "reports page"},
			{at: "10:00:01", kind: messages.KindException, page: "reports page", detail: "chart failed to load"},
			{at: "10:00:10", kind: messages.KindPageview, page: "reports page"},
			{at: "10:00:20", kind: messages.KindPageview, page: "reports page"},
			{at: "10:00:21", kind: messages.KindException, page: "reports page", detail: "chart failed to load"},
		}, "Over 21 seconds (10:00:00 to 10:00:21 UTC), the user opened the reports page and hit an error (chart failed to load). They then reloaded the page twice and hit the same error again (chart failed to load). They are now on the reports page."},
		{"three-step rounds", []journeyStep{
			{at: "10:00:00", kind: messages.KindPageview, page: "cart page"},
			{at: "10:00:05", kind: messages.KindChange, page: "cart page", target: "coupon field"},
			{at: "10:00:06", kind: messages.KindClick, page: "cart page", target: "Apply button"},
			{at: "10:00:06", kind: messages.KindSubmit, page: "cart page", target: "coupon form"},
			{at: "10:00:07", kind: messages.KindError, page: "cart page", event: "coupon_invalid", detail: "code expired"},
			{at: "10:00:15", kind: messages.KindChange, page: "cart page", target: "coupon field"},
			{at: "10:00:16", kind: messages.KindClick, page: "cart page", target: "Apply button"},
			{at: "10:00:16", kind: messages.KindSubmit, page: "cart page", target: "coupon form"},
			{at: "10:00:17", kind: messages.KindError, page: "cart page", event: "coupon_invalid", detail: "code not found"},
		}, "Over 17 seconds (10:00:00 to 10:00:17 UTC), the user opened the cart page, where they tried twice to fill in the coupon field and submit the coupon form by clicking Apply, hitting an invalid coupon error (code expired; code not found) each time. They are now on the cart page."},
		{"dead clicks and several pages of one kind", []journeyStep{
			{at: "10:00:00", kind: messages.KindPageview, page: "docs page"},
			{at: "10:00:30", kind: messages.KindPageview, page: "docs page", text: "User opened the docs page"},
			{at: "10:01:00", kind: messages.KindClick, page: "docs page", target: "Download PDF button"},
			{at: "10:01:02", kind: messages.KindDeadClick, page: "docs page", target: "Download PDF button"},
			{at: "10:01:03", kind: messages.KindClick, page: "docs page", target: "Download PDF button"},
		}, "Over 63 seconds (10:00:00 to 10:01:03 UTC), the user opened the docs page, where they reloaded the page and clicked Download PDF twice but nothing happened. They are now on the docs page."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := NewNarrative().Summarize(context.Background(), Input{Actions: journey(t, "s", "2025-03-04", tt.steps...)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Text != tt.want {
				t.Errorf("\n got: %s\nwant: %s", res.Text, tt.want)
			}
		})
	}
}

// A page name shared by several paths (one "docs page" per article) is browsing, not reloading.
func TestNarrativeSamePageNameNewPath(t *testing.T) {
	actions := journey(t, "s", "2025-03-04",
		journeyStep{at: "10:00:00", kind: messages.KindPageview, page: "docs page"},
		journeyStep{at: "10:00:30", kind: messages.KindPageview, page: "docs page"},
		journeyStep{at: "10:01:00", kind: messages.KindPageview, page: "docs page"},
	)
	actions[1].Path, actions[2].Path = "/docs/install", "/docs/api"
	res, err := NewNarrative().Summarize(context.Background(), Input{Actions: actions})
	if err != nil {
		t.Fatal(err)
	}
	want := "Over 60 seconds (10:00:00 to 10:01:00 UTC), the user opened the docs page and opened two more docs pages. They are now on the docs page."
	if res.Text != want {
		t.Errorf("\n got: %s\nwant: %s", res.Text, want)
	}
}

func TestErrorNameAndDetail(t *testing.T) {
	tests := []struct {
		action     messages.Action
		name, want string
	}{
		{messages.Action{Kind: messages.KindError, Event: "payment_validation_failed", Detail: "incorrect number"}, "payment validation", "incorrect number"},
		{messages.Action{Kind: messages.KindError, Event: "checkoutError"}, "checkout", ""},
		{messages.Action{Kind: messages.KindError, Event: "Upload Failed", Detail: "upload failed"}, "upload", ""},
		{messages.Action{Kind: messages.KindError, Event: "error"}, "", ""},
		{messages.Action{Kind: messages.KindError, Event: "coupon_invalid", Detail: "code expired"}, "invalid coupon", "code expired"},
		{messages.Action{Kind: messages.KindError, Event: "payment_declined"}, "declined payment", ""},
		{messages.Action{Kind: messages.KindException, Event: "$exception", Text: "User hit an error on the checkout page: card validation failed"}, "", "card validation failed"},
	}
	for _, tt := range tests {
		if got := errorName(tt.action); got != tt.name {
			t.Errorf("errorName(%q) = %q, want %q", tt.action.Event, got, tt.name)
		}
		if got := errorDetail(tt.action); got != tt.want {
			t.Errorf("errorDetail(%q) = %q, want %q", tt.action.Event, got, tt.want)
		}
	}
}

func TestSelection(t *testing.T) {
	tests := []struct{ target, page, want string }{
		{"Select Pro button", "pricing page", "the Pro plan"},
		{"Choose Team plan button", "checkout page", "the Team plan"},
		{"Select Business", "plans page", "the Business plan"},
		{"Choose dark theme button", "settings page", "dark theme"},
		{"Select all checkbox", "inbox page", ""},
		{"Pay $49.00 button", "pricing page", ""},
		{"Select button", "pricing page", ""},
	}
	for _, tt := range tests {
		if got := selection(tt.target, tt.page); got != tt.want {
			t.Errorf("selection(%q, %q) = %q, want %q", tt.target, tt.page, got, tt.want)
		}
	}
}

// BenchmarkNarrative measures one summary of the shared journey, and of a long session.
func BenchmarkNarrative(b *testing.B) {
	long := browsingJourney(b)
	for range 10 {
		long = append(long, errorLoopJourney(b)...)
		long = append(long, checkoutJourney(b)...)
	}
	for i := range long {
		long[i].ActionID = fmt.Sprintf("bench-%d", i)
	}
	for _, bc := range []struct {
		name    string
		actions []messages.Action
	}{{"checkout_journey", checkoutJourney(b)}, {fmt.Sprintf("%d_actions", len(long)), long}} {
		b.Run(bc.name, func(b *testing.B) {
			n := NewNarrative()
			in := Input{Actions: bc.actions}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := n.Summarize(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
