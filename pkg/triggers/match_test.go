package triggers

import (
	"slices"
	"testing"

	"github.com/threadline/threadline/pkg/messages"
)

// TestConditionMatching runs each condition against actions it must and must not match.
func TestConditionMatching(t *testing.T) {
	pricing := act("a1", "$pageview", messages.KindPageview, "/pricing", 0, nil)
	pricingSlash := act("a2", "$pageview", messages.KindPageview, "/pricing/", 0, nil)
	pricingTeams := act("a3", "$pageview", messages.KindPageview, "/pricing/teams", 0, nil)
	billing := act("a4", "$pageview", messages.KindPageview, "/settings/billing", 0, nil)
	rage := act("a5", "$rageclick", messages.KindRageClick, "/checkout", 0, nil)
	paymentPro := act("a6", "payment_failed", messages.KindError, "/checkout", 0,
		map[string]string{"plan": "pro", "error_code": "card_declined", "amount_cents": "4900", "retry": "true"})
	paymentFree := act("a7", "payment_failed", messages.KindError, "/checkout", 0, map[string]string{"plan": "free"})
	paymentNoPlan := act("a8", "payment_failed", messages.KindError, "/checkout", 0, nil)
	screen := act("a9", "$screen", messages.KindPageview, "/pricing", 0, nil)

	cases := []struct {
		name     string
		when     string
		match    []messages.ProductAction
		nomatch  []messages.ProductAction
		dwellsOK bool // the condition matches pageviews only
	}{
		{"event", "{ event: $rageclick }", []messages.ProductAction{rage}, []messages.ProductAction{pricing, paymentPro}, false},
		{"event list", "{ event: [$pageview, $screen] }", []messages.ProductAction{pricing, screen}, []messages.ProductAction{rage}, true},
		{"event is case-sensitive", "{ event: $PageView }", nil, []messages.ProductAction{pricing}, false},
		{"kind", "{ kind: rageclick }", []messages.ProductAction{rage}, []messages.ProductAction{pricing}, false},
		{"kind list", "{ kind: [error, rageclick] }", []messages.ProductAction{rage, paymentPro}, []messages.ProductAction{pricing}, false},
		{"kind pageview", "{ kind: pageview }", []messages.ProductAction{pricing, screen}, []messages.ProductAction{rage}, true},
		{"url equality ignores a trailing slash", "{ url: /pricing }", []messages.ProductAction{pricing, pricingSlash}, []messages.ProductAction{pricingTeams, billing}, false},
		{"url written with a slash", "{ url: /pricing/ }", []messages.ProductAction{pricing, pricingSlash}, []messages.ProductAction{pricingTeams}, false},
		{"url prefix", "{ url_prefix: /pricing }", []messages.ProductAction{pricing, pricingSlash, pricingTeams}, []messages.ProductAction{billing}, false},
		{"url prefix of a section", "{ url_prefix: /settings/ }", []messages.ProductAction{billing}, []messages.ProductAction{pricing}, false},
		{"url contains", "{ url_contains: billing }", []messages.ProductAction{billing}, []messages.ProductAction{pricing, rage}, false},
		{"page any case", "{ page: Pricing }", []messages.ProductAction{pricing}, []messages.ProductAction{billing}, false},
		{"property any case", "{ properties: { plan: Pro } }", []messages.ProductAction{paymentPro}, []messages.ProductAction{paymentFree, paymentNoPlan}, false},
		{"property list", "{ properties: { plan: [free, team] } }", []messages.ProductAction{paymentFree}, []messages.ProductAction{paymentPro}, false},
		{"property number", "{ properties: { amount_cents: 4900 } }", []messages.ProductAction{paymentPro}, []messages.ProductAction{paymentFree}, false},
		{"property boolean", "{ properties: { retry: true } }", []messages.ProductAction{paymentPro}, []messages.ProductAction{paymentFree}, false},
		{"every property must hold", "{ properties: { plan: pro, error_code: expired_card } }", nil, []messages.ProductAction{paymentPro}, false},
		{"every condition must hold", "{ event: $pageview, url_contains: /pricing }", []messages.ProductAction{pricing, pricingTeams}, []messages.ProductAction{screen, billing, rage}, true},
		{"event, kind, url and property", "{ event: payment_failed, kind: error, url: /checkout, properties: { plan: pro } }",
			[]messages.ProductAction{paymentPro}, []messages.ProductAction{paymentFree, rage}, false},
		{"pageview event and a click kind never dwell", "{ event: $pageview, kind: [pageview, click] }", []messages.ProductAction{pricing}, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rules := mustParse(t, "triggers:\n  - name: matched-action\n    when: "+tc.when+"\n")
			r := &rules.Triggers[0]
			for _, pa := range tc.match {
				if !r.Matches(&pa) {
					t.Errorf("%s %s does not match", pa.Action.Event, pa.Action.Path)
				}
			}
			for _, pa := range tc.nomatch {
				if r.Matches(&pa) {
					t.Errorf("%s %s matches", pa.Action.Event, pa.Action.Path)
				}
			}
			if got := r.When.matchesOnlyPageviews(); got != tc.dwellsOK {
				t.Errorf("matches only pageviews = %v, want %v", got, tc.dwellsOK)
			}
		})
	}
}

// TestCandidatesKeepFileOrder checks the rule index: an action is tried against the rules of its
// event and those of any event, less those whose kind condition excludes its kind, in file order.
func TestCandidatesKeepFileOrder(t *testing.T) {
	rules := mustParse(t, `triggers:
  - name: clicked-anything
    when: { kind: click }
  - name: rage-clicked
    when: { event: [$rageclick, $autocapture] }
  - name: viewed-page
    when: { event: $pageview }
  - name: hit-error
    when: { kind: [error, exception] }
  - name: clicked-or-submitted
    when: { event: $autocapture, kind: [click, submit] }
`)
	e := NewEngine(rules, nil, nil, nil)
	for _, tc := range []struct {
		event, kind string
		want        []int
	}{
		{"$rageclick", messages.KindRageClick, []int{1}},
		{"$rageclick", messages.KindClick, []int{0, 1}},
		{"$autocapture", messages.KindClick, []int{0, 1, 4}},
		{"$autocapture", messages.KindSubmit, []int{1, 4}},
		{"$autocapture", messages.KindChange, []int{1}},
		{"$pageview", messages.KindPageview, []int{2}},
		{"payment_failed", messages.KindError, []int{3}},
		{"$exception", messages.KindException, []int{3}},
		{"payment_failed", messages.KindCustom, nil},
		{"payment_failed", "", nil},
	} {
		if got := e.candidatesFor(tc.event, tc.kind); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: candidates %v, want %v", tc.event, tc.kind, got, tc.want)
		}
	}
}
