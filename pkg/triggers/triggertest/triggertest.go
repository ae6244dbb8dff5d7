// Package triggertest gives tests and benchmarks the traffic the trigger rules are measured on:
// poll batches of product actions of many sessions, a few of which match one of the 20 rules of
// RulesFile, the kinds of rules a product team writes.
package triggertest

import (
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// The shape of a batch of Traffic: sessions sessions, perSession consecutive actions each, and
// the event time it covers (Stamp): 50 actions a second.
const (
	sessions   = 100
	perSession = 5
	batchSize  = sessions * perSession
	span       = 10 * time.Second
)

// RulesFile is the absolute path of the rules file of the benchmarks: 20 rules, two of them with
// a dwell, several with every, property conditions and metadata.
func RulesFile() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "bench_rules.yaml")
}

// template is one kind of action of the traffic.
type template struct {
	event, kind, path string
	props             map[string]string
}

// quiet is a cycle of 20 actions of a product session that no rule of RulesFile matches: pages
// (a quarter of the actions are page events), clicks, form changes and submits, custom events.
var quiet = []template{
	{"$pageview", messages.KindPageview, "/checkout", nil},
	{"$autocapture", messages.KindClick, "/checkout", map[string]string{"cta": "select-pro"}},
	{"$autocapture", messages.KindClick, "/checkout", nil},
	{"$pageview", messages.KindPageview, "/settings/profile", nil},
	{"$autocapture", messages.KindChange, "/settings/profile", nil},
	{"$autocapture", messages.KindChange, "/settings/profile", nil},
	{"$autocapture", messages.KindSubmit, "/settings/profile", nil},
	{"plan_selected", messages.KindCustom, "/settings/profile", map[string]string{"plan": "pro"}},
	{"$pageview", messages.KindPageview, "/projects", nil},
	{"$autocapture", messages.KindClick, "/projects", nil},
	{"$pageview", messages.KindPageview, "/docs/getting-started", nil},
	{"$autocapture", messages.KindClick, "/docs/getting-started", nil},
	{"$autocapture", messages.KindClick, "/docs/getting-started", nil},
	{"$pageleave", messages.KindPageleave, "/docs/getting-started", nil},
	{"$pageview", messages.KindPageview, "/dashboard", nil},
	{"$autocapture", messages.KindClick, "/dashboard", nil},
	{"$autocapture", messages.KindSubmit, "/dashboard", nil},
	{"project_created", messages.KindCustom, "/dashboard", map[string]string{"template": "blank"}},
	{"$autocapture", messages.KindClick, "/dashboard", nil},
	{"$autocapture", messages.KindChange, "/dashboard", nil},
}

// matching are the actions that match a rule: a payment error (emitted every time), a rage click
// (limited by every), and pricing and billing pageviews (dwell waits).
var matching = []template{
	{"payment_failed", messages.KindError, "/checkout", map[string]string{"plan": "pro", "error_code": "card_declined"}},
	{"$pageview", messages.KindPageview, "/pricing", nil},
	{"$rageclick", messages.KindRageClick, "/checkout", nil},
	{"$pageview", messages.KindPageview, "/settings/billing", nil},
	{"$pageview", messages.KindPageview, "/pricing", nil},
}

// Traffic builds a poll batch of 500 actions, 5 consecutive ones for each of 100 sessions, each
// session of its own identified user. Every matchEvery-th action matches a
// rule of RulesFile (0: none). Stamp gives them ids and event times.
func Traffic(matchEvery int) []messages.ProductAction {
	actions := make([]messages.ProductAction, batchSize)
	for i := range actions {
		tpl := quiet[i%len(quiet)]
		if matchEvery > 0 && i%matchEvery == matchEvery/2 {
			tpl = matching[(i/matchEvery)%len(matching)]
		}
		session := strconv.Itoa(i / perSession)
		uid := "bench-u" + session
		actions[i] = messages.ProductAction{
			Version: messages.Version,
			Action: messages.Action{
				SessionID: "bench-s" + session, Event: tpl.event, Kind: tpl.kind, Path: tpl.path,
				Page: tpl.path[1:], Text: "User did " + tpl.event,
			},
			Identity:   messages.Identity{DistinctID: uid, UserID: uid},
			Properties: tpl.props,
		}
	}
	return actions
}

// Stamp gives the batch's actions fresh ids and event times for its n-th use: batch n covers
// [start + n×10s, start + (n+1)×10s).
func Stamp(actions []messages.ProductAction, n int, start time.Time) {
	step := span / time.Duration(len(actions))
	for i := range actions {
		actions[i].Action.ActionID = "bench-" + strconv.Itoa(n) + "-" + strconv.Itoa(i)
		actions[i].Action.EventTime = start.Add(time.Duration(n)*span + time.Duration(i)*step)
	}
}
