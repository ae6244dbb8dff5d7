package triggers

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/schemas"
)

// TestIssueExampleParsesAsWritten loads the example of the issue and checks every field.
func TestIssueExampleParsesAsWritten(t *testing.T) {
	got := issueRules(t)
	want := []Rule{
		{Name: "rage-clicked", When: Condition{Events: []string{"$rageclick"}}, Every: time.Hour, Line: 3},
		{Name: "lingered-on-pricing", When: Condition{Events: []string{"$pageview"}, URLContains: "/pricing"}, Dwell: time.Minute, Line: 6},
		{
			Name:     "hit-payment-error",
			When:     Condition{Events: []string{"payment_failed"}, Properties: map[string][]string{"plan": {"Pro"}}},
			Metadata: []MetadataField{{Key: "error_code", Property: "error_code"}, {Key: "plan", Property: "plan"}},
			Line:     9,
		},
	}
	if !reflect.DeepEqual(got.Triggers, want) {
		t.Fatalf("rules:\n got %+v\nwant %+v", got.Triggers, want)
	}
	if got.Source != "issue.yaml" || !got.HasDwell() {
		t.Errorf("source %q, HasDwell %v", got.Source, got.HasDwell())
	}
	if n := got.Names(); !reflect.DeepEqual(n, []string{"rage-clicked", "lingered-on-pricing", "hit-payment-error"}) {
		t.Errorf("Names = %v", n)
	}
}

// TestEveryExampleLoads parses every shipped example file.
func TestEveryExampleLoads(t *testing.T) {
	examples, err := schemas.TriggersExamples()
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) < 3 {
		t.Fatalf("%d example rule files, want at least 3", len(examples))
	}
	for _, ex := range examples {
		r, err := Parse(ex.Data, ex.Name)
		if err != nil {
			t.Errorf("%s: %v", ex.Name, err)
			continue
		}
		if len(r.Triggers) == 0 {
			t.Errorf("%s: no rules", ex.Name)
		}
	}
}

func TestLoadBlockStyleFile(t *testing.T) {
	r := testdataRules(t, "valid.yaml")
	want := []Rule{
		{
			Name: "hit-payment-error",
			When: Condition{
				Events:     []string{"payment_failed", "payment_validation_failed"},
				Properties: map[string][]string{"plan": {"Pro", "Team"}},
			},
			Metadata: []MetadataField{{"error_code", "error_code"}, {"plan", "plan"}, {"provider", "payment_provider"}},
			Line:     3,
		},
		{
			Name:  "lingered-on-pricing",
			When:  Condition{Kinds: []string{"pageview"}, URL: "/pricing"}, // trailing slash dropped
			Dwell: 90 * time.Second,
			Every: 24 * time.Hour,
			Line:  13,
		},
	}
	if !reflect.DeepEqual(r.Triggers, want) {
		t.Fatalf("rules:\n got %+v\nwant %+v", r.Triggers, want)
	}
	if r.Source != filepath.Join("testdata", "valid.yaml") {
		t.Errorf("Source = %q", r.Source)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalidRules) {
		t.Fatalf("got %v, want a not-exist error that is not ErrInvalidRules", err)
	}
}

// wantProblem is a problem a test expects: its line, path and a part of its message.
type wantProblem struct {
	line    int
	path    string
	message string
}

func checkProblems(t *testing.T, err error, want []wantProblem) {
	t.Helper()
	var rerr *RulesError
	if !errors.As(err, &rerr) || !errors.Is(err, ErrInvalidRules) {
		t.Fatalf("got %v, want a *RulesError wrapping ErrInvalidRules", err)
	}
	if len(rerr.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%v", len(rerr.Problems), len(want), err)
	}
	for i, w := range want {
		if i >= len(rerr.Problems) {
			break
		}
		p := rerr.Problems[i]
		if p.Line != w.line || p.Path != w.path || !strings.Contains(p.Message, w.message) {
			t.Errorf("problem %d = %d:%d %s: %s\n want line %d, path %s, message containing %q", i, p.Line, p.Column, p.Path, p.Message, w.line, w.path, w.message)
		}
		if w.line > 0 && p.Column == 0 {
			t.Errorf("problem %d has no column", i)
		}
	}
	if msg := err.Error(); want[0].line > 0 && !strings.Contains(msg, rerr.Source+":"+fmt.Sprint(want[0].line)+":") {
		t.Errorf("error text does not start problems with source:line: %s", msg)
	}
}

// TestSchemaErrorsCarryLines checks that every schema violation is reported at its line.
func TestSchemaErrorsCarryLines(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "schema_errors.yaml"))
	checkProblems(t, err, []wantProblem{
		{3, "triggers[0].name", `"RageClicked" is not a past-tense verb-noun event name`},
		{6, "triggers[1].when.kinds", "unknown field kinds (allowed: event, kind, page, properties, url, url_contains, url_prefix)"},
		{7, "triggers[1].every", `"1hour" is not a duration`},
		{9, "triggers[2].when.url", `"pricing" is not a URL path`},
		{10, "triggers[2].metadata[1]", `"card.brand" must not contain . or $`},
		{12, "triggers[3].when", "no condition: give at least one of event, kind"},
		{13, "triggers[4]", "missing when"},
		{16, "triggers[5].when.kind[1]", "tap is not one of pageview"},
		{17, "triggers[5].metadata[0].total$", `metadata key "total$" must not contain . or $`},
	})
}

// TestRuleErrorsCarryLines checks the problems only Go can see, each at its line.
func TestRuleErrorsCarryLines(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "rule_errors.yaml"))
	checkProblems(t, err, []wantProblem{
		{5, "triggers[1].name", `"hit-payment-error" is already the name of the rule at line 3`},
		{9, "triggers[2].dwell", "a dwell rule must match pageviews only"},
		{12, "triggers[3].every", "100d is longer than the 90d allowed"},
		{15, "triggers[4].dwell", "500ms is shorter than the 1s allowed"},
		{19, "triggers[5].when.properties.contact", "looks like personal data"},
		{22, "triggers[6].metadata[1]", `metadata key "plan" is listed twice`},
	})
}

func TestParseProblems(t *testing.T) {
	cases := []struct {
		name, src string
		want      []wantProblem
	}{
		{"syntax error", "triggers:\n  - name: rage-clicked\n    when: {event: $rageclick\n",
			[]wantProblem{{3, "", "could not find flow mapping end token"}}},
		{"duplicate key", "triggers:\n  - name: rage-clicked\n    when: { event: $rageclick }\n    when: { event: $dead_click }\n",
			[]wantProblem{{4, "", "mapping key \"when\" already defined"}}},
		{"empty file", "# nothing yet\n",
			[]wantProblem{{1, "", "the file holds no rules"}}},
		{"empty list", "triggers: []\n",
			[]wantProblem{{1, "triggers", "no rules: give at least one"}}},
		{"two documents", "triggers:\n  - name: rage-clicked\n    when: { event: $rageclick }\n---\ntriggers: []\n",
			[]wantProblem{{5, "", "a second YAML document"}}},
		{"not a mapping", "- name: rage-clicked\n",
			[]wantProblem{{1, "", "got array, want object"}}},
		{"unknown top-level key", "rules:\n  - name: rage-clicked\n",
			[]wantProblem{{1, "", "missing triggers"}, {1, "rules", "unknown field rules (allowed: triggers)"}}},
		{"event of the wrong type", "triggers:\n  - name: rage-clicked\n    when: { event: 5 }\n",
			[]wantProblem{{3, "triggers[0].when.event", "got number, want string or array"}}},
		{"property value an object", "triggers:\n  - name: hit-payment-error\n    when:\n      properties: { plan: { tier: pro } }\n",
			[]wantProblem{{4, "triggers[0].when.properties.plan", "got object, want"}}},
		{"more than ten metadata keys", "triggers:\n  - name: hit-payment-error\n    when: { event: payment_failed }\n    metadata: [a, b, c, d, e, f, g, h, i, j, k]\n",
			[]wantProblem{{4, "triggers[0].metadata", "maxItems"}}},
		{"url with a query", "triggers:\n  - name: viewed-pricing\n    when: { url_prefix: /pricing?plan=pro }\n",
			[]wantProblem{{3, "triggers[0].when.url_prefix", "is not a URL path"}}},
		{"name without a verb", "triggers:\n  - name: pricing-page\n    when: { url: /pricing }\n",
			[]wantProblem{{2, "triggers[0].name", "is not a past-tense verb-noun event name"}}},
		{"one-word name", "triggers:\n  - name: clicked\n    when: { kind: click }\n",
			[]wantProblem{{2, "triggers[0].name", "is not a past-tense verb-noun event name"}}},
		{"snake case name", "triggers:\n  - name: rage_clicked\n    when: { kind: rageclick }\n",
			[]wantProblem{{2, "triggers[0].name", "is not a past-tense verb-noun event name"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "rules.yaml")
			checkProblems(t, err, tc.want)
		})
	}
}

func TestNamesAccepted(t *testing.T) {
	for _, name := range []string{
		"rage-clicked", "hit-payment-error", "lingered-on-pricing", "viewed-pricing-page",
		"left-checkout", "paid-invoice", "clicked-dead-settings-button", "upgraded-to-pro", "got-error-404",
	} {
		src := fmt.Sprintf("triggers:\n  - name: %s\n    when: { kind: click }\n", name)
		if _, err := Parse([]byte(src), "rules.yaml"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTooManyRules(t *testing.T) {
	var b strings.Builder
	b.WriteString("triggers:\n")
	for i := range MaxRules + 1 {
		fmt.Fprintf(&b, "  - name: clicked-button-%d\n    when: { kind: click }\n", i)
	}
	_, err := Parse([]byte(b.String()), "rules.yaml")
	checkProblems(t, err, []wantProblem{{1, "triggers", "maxItems"}})
}

func TestDurations(t *testing.T) {
	cases := map[string]time.Duration{
		"1s": time.Second, "90s": 90 * time.Second, "1m30s": 90 * time.Second, "1h": time.Hour,
		"1d": 24 * time.Hour, "1d12h": 36 * time.Hour, "1500ms": 1500 * time.Millisecond, "90d": 90 * 24 * time.Hour,
	}
	for s, want := range cases {
		got, err := parseDuration(s, MinDuration, MaxEvery)
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "h", "1", "1w", "-1s", "999999999999999999999d", "91d", "999ms"} {
		if got, err := parseDuration(s, MinDuration, MaxEvery); err == nil {
			t.Errorf("%q = %v, want an error", s, got)
		}
	}
}

func TestFileTooLarge(t *testing.T) {
	big := "# " + strings.Repeat("x", maxFileSize) + "\n"
	_, err := Load(writeFile(t, big))
	checkProblems(t, err, []wantProblem{{0, "", "more than the"}})
}
