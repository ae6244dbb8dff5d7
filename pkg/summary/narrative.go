package summary

import (
	"context"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// Narrative is the default engine: a deterministic, dependency-free writer of English summaries.
//
// It groups a session's actions by page, collapses repeats ("clicked Pay $49.00 three times"),
// names the goal where the steps show it ("selected the Pro plan", "submitted the checkout form"),
// makes errors and frustration explicit (errors with their details, rage clicks, dead clicks),
// gives the time span, and ends with where the user is now. It says only what the actions show.
// A Narrative has no state; one value serves any number of goroutines.
type Narrative struct{}

// NewNarrative returns the narrative engine.
func NewNarrative() *Narrative { return &Narrative{} }

// Summarize implements Engine. When in.PreviousActions are given it summarises them together with
// in.Actions; otherwise it continues in.Previous with an account of in.Actions. It never fails
// for an input that has actions or a previous summary; it does no I/O and ignores ctx.
func (n *Narrative) Summarize(_ context.Context, in Input) (Result, error) {
	previous := strings.TrimSpace(in.Previous)
	var actions []messages.Action
	continuing := false
	if len(in.PreviousActions) > 0 {
		actions = sessionActions(in.PreviousActions, in.Actions)
	} else {
		actions = sessionActions(in.Actions)
		continuing = previous != ""
	}
	text := narrate(actions, continuing)
	switch {
	case text != "" && continuing:
		text = withoutWhereNow(previous) + " " + text
	case text == "" && previous != "":
		text = previous
	case text == "":
		return Result{}, ErrNothingToSummarize
	}
	return Result{Text: text, Engine: EngineNarrative}, nil
}

// withoutWhereNow removes a previous summary's closing "where the user is now" sentence (as
// whereNow writes it), which the new account of the session replaces.
func withoutWhereNow(previous string) string {
	for _, opening := range [...]string{"They are now on ", "They were last seen on "} {
		i := strings.LastIndex(previous, opening)
		if i > 0 && !strings.Contains(previous[i:], ". ") {
			return strings.TrimSpace(previous[:i])
		}
	}
	return previous
}

// Steps within a page visit, after repeats are folded together.
type stepKind int

const (
	stepClick  stepKind = iota // a run of clicks on one target, possibly rage or dead clicks
	stepSubmit                 // a form submitted, possibly by clicking a button
	stepFill                   // changes to one or more fields
	stepError                  // one burst of errors and exceptions
	stepReload                 // the page loaded again
	stepBrowse                 // another page of the same kind opened (same page name, new path)
	stepOther                  // anything else, phrased from the action's own sentence
	stepLoop                   // the same steps ending in the same error, several rounds in a row
)

type step struct {
	kind       stepKind
	start, end time.Time
	target     string   // click: what was clicked; submit: the form
	via        string   // submit: what was clicked to submit it
	clicks     int      // click: click events in the run (rage and dead click events excluded)
	count      int      // submit, error, reload, browse, other: times in a row
	rage, dead bool     // click
	fields     []string // fill: the targets changed, in order
	errNames   []string // error: named kinds of error, "payment validation"
	details    []string // error: the redacted details, "card validation failed"
	phrase     string   // other: past-tense verb phrase
	cycle      []step   // loop: one round, its last step the error (details merged over rounds)
	rounds     int      // loop
}

// visit is one stay on one page.
type visit struct {
	page       string
	path       string
	entered    bool // began with a pageview
	revisit    bool // the page was visited earlier in the session
	left       bool // the last thing on it was a pageleave
	start, end time.Time
	steps      []step
}

const (
	submitAfterClick = 2 * time.Second  // a submit this soon after a click was made by that click
	errorBurst       = 5 * time.Second  // errors this close together are one failure
	navigationClick  = 30 * time.Second // a link click this soon before a pageview was the navigation
	notableGap       = 2 * time.Minute  // a pause this long is mentioned ("Eight minutes later")
)

// buildVisits groups actions (in time order) into page visits made of steps.
func buildVisits(actions []messages.Action) []*visit {
	var visits []*visit
	var cur *visit
	seen := make(map[string]bool)
	open := func(a messages.Action, entered bool) {
		if cur != nil {
			cur.dropNavigationClick(a.EventTime)
		}
		cur = &visit{page: a.Page, path: a.Path, entered: entered, revisit: a.Page != "" && seen[a.Page]}
		cur.touch(a.EventTime)
		if a.Page != "" {
			seen[a.Page] = true
		}
		visits = append(visits, cur)
	}
	for _, a := range actions {
		samePage := cur != nil && (a.Page == "" || a.Page == cur.page)
		switch a.Kind {
		case messages.KindPageview:
			if !samePage || a.Page == "" {
				open(a, true)
				continue
			}
			cur.left = false
			cur.touch(a.EventTime)
			if a.Path == cur.path {
				cur.appendOrRepeat(step{kind: stepReload, count: 1, start: a.EventTime, end: a.EventTime})
			} else {
				cur.path = a.Path
				cur.appendOrRepeat(step{kind: stepBrowse, count: 1, start: a.EventTime, end: a.EventTime})
			}
		case messages.KindPageleave:
			if !samePage {
				open(a, false)
			}
			cur.touch(a.EventTime)
			cur.left = true
		default:
			if !samePage {
				open(a, false)
			}
			cur.touch(a.EventTime)
			cur.left = false
			cur.record(a)
		}
	}
	for _, v := range visits {
		v.steps = foldRounds(v.steps)
	}
	return visits
}

func (v *visit) touch(t time.Time) {
	if t.IsZero() {
		return
	}
	if v.start.IsZero() || t.Before(v.start) {
		v.start = t
	}
	if t.After(v.end) {
		v.end = t
	}
}

func (v *visit) last() *step {
	if len(v.steps) == 0 {
		return nil
	}
	return &v.steps[len(v.steps)-1]
}

// dropNavigationClick removes a link click that only took the user to the next page: the
// arrival on that page says it already.
func (v *visit) dropNavigationClick(next time.Time) {
	s := v.last()
	if s == nil || s.kind != stepClick || s.clicks != 1 || s.rage || s.dead ||
		!strings.HasSuffix(s.target, " link") || !within(s.end, next, navigationClick) {
		return
	}
	v.steps = v.steps[:len(v.steps)-1]
}

// record adds one action (not a pageview or pageleave) to the visit's steps.
func (v *visit) record(a messages.Action) {
	t := a.EventTime
	last := v.last()
	switch a.Kind {
	case messages.KindIdentify:
		// Signing in is context, not something the user was trying to do on the page.
	case messages.KindClick, messages.KindRageClick, messages.KindDeadClick:
		// PostHog reports a rage or dead click next to the clicks it was made of: one run.
		if last == nil || last.kind != stepClick || last.target != a.Target {
			v.steps = append(v.steps, step{kind: stepClick, target: a.Target, start: t})
			last = v.last()
		}
		switch a.Kind {
		case messages.KindClick:
			last.clicks++
		case messages.KindRageClick:
			last.rage = true
		case messages.KindDeadClick:
			last.dead = true
		}
		last.end = t
	case messages.KindSubmit:
		if last != nil && last.kind == stepClick && last.clicks == 1 && !last.rage && !last.dead &&
			within(last.end, t, submitAfterClick) {
			*last = step{kind: stepSubmit, target: a.Target, via: last.target, count: 1, start: last.start, end: t}
			return
		}
		v.appendOrRepeat(step{kind: stepSubmit, target: a.Target, count: 1, start: t, end: t})
	case messages.KindChange:
		if last != nil && last.kind == stepFill {
			if !containsFold(last.fields, a.Target) {
				last.fields = append(last.fields, a.Target)
			}
			last.end = t
			return
		}
		v.steps = append(v.steps, step{kind: stepFill, fields: []string{a.Target}, start: t, end: t})
	case messages.KindError, messages.KindException:
		name, detail := errorName(a), errorDetail(a)
		if last != nil && last.kind == stepError && within(last.end, t, errorBurst) {
			last.addError(name, detail)
			last.end = t
			return
		}
		s := step{kind: stepError, count: 1, start: t, end: t}
		s.addError(name, detail)
		v.appendOrRepeat(s)
	default:
		v.appendOrRepeat(step{kind: stepOther, phrase: actionPhrase(a, v.page), count: 1, start: t, end: t})
	}
}

// appendOrRepeat adds s, or counts it as a repeat of the step before when it is the same step.
func (v *visit) appendOrRepeat(s step) {
	if last := v.last(); last != nil && sameStep(*last, s, false) {
		last.count += s.count
		last.details = appendDetails(last.details, s.details...)
		last.end = s.end
		return
	}
	v.steps = append(v.steps, s)
}

func (s *step) addError(name, detail string) {
	if name != "" && !containsFold(s.errNames, name) {
		s.errNames = append(s.errNames, name)
	}
	s.details = appendDetails(s.details, detail)
}

// sameStep reports whether two steps did the same thing; withCount also compares how often.
func sameStep(a, b step, withCount bool) bool {
	if a.kind != b.kind || a.target != b.target || a.via != b.via || a.phrase != b.phrase ||
		a.rage != b.rage || a.dead != b.dead || a.clicks != b.clicks || a.kind == stepLoop ||
		!equalFold(a.fields, b.fields) || !equalFold(a.errNames, b.errNames) {
		return false
	}
	return !withCount || a.count == b.count
}

// foldRounds replaces rounds of two or three steps that end in the same error and repeat back to
// back ("submitted the form, hit an error" three times) with one loop step.
func foldRounds(steps []step) []step {
	var out []step
	for i := 0; i < len(steps); {
		bestSize, bestRounds := 0, 0
		for size := 2; size <= 3; size++ {
			if r := roundsAt(steps[i:], size); r >= 2 && r*size > bestRounds*bestSize {
				bestSize, bestRounds = size, r
			}
		}
		if bestSize == 0 {
			out = append(out, steps[i])
			i++
			continue
		}
		loop := step{kind: stepLoop, rounds: bestRounds, start: steps[i].start,
			end: steps[i+bestSize*bestRounds-1].end}
		loop.cycle = append([]step(nil), steps[i:i+bestSize]...)
		errStep := &loop.cycle[bestSize-1]
		errStep.details = append([]string(nil), errStep.details...)
		for r := 1; r < bestRounds; r++ {
			errStep.details = appendDetails(errStep.details, steps[i+r*bestSize+bestSize-1].details...)
		}
		out = append(out, loop)
		i += bestSize * bestRounds
	}
	return out
}

// roundsAt counts how many times the first size steps repeat back to back, when they form a
// round: actions that can be retried, then an error.
func roundsAt(steps []step, size int) int {
	if len(steps) < 2*size || steps[size-1].kind != stepError {
		return 0
	}
	for _, s := range steps[:size-1] {
		if s.kind == stepError || s.kind == stepOther || s.kind == stepLoop {
			return 0
		}
	}
	rounds := 1
	for ; (rounds+1)*size <= len(steps); rounds++ {
		for k := 0; k < size; k++ {
			if !sameStep(steps[k], steps[rounds*size+k], true) {
				return rounds
			}
		}
	}
	return rounds
}

func within(earlier, later time.Time, d time.Duration) bool {
	if earlier.IsZero() || later.IsZero() {
		return true
	}
	return later.Sub(earlier) <= d
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func equalFold(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

func appendDetails(list []string, details ...string) []string {
	for _, d := range details {
		if d != "" && !containsFold(list, d) {
			list = append(list, d)
		}
	}
	return list
}

// errorName names the kind of error an error event reports, from its event name:
// "payment_validation_failed" is a "payment validation" error, "coupon_invalid" an "invalid
// coupon" error. Exceptions have no name.
func errorName(a messages.Action) string {
	if a.Kind == messages.KindException || strings.HasPrefix(a.Event, "$") {
		return ""
	}
	var kept []string
	for _, w := range eventWords(a.Event) {
		switch w {
		case "failed", "failure", "fail", "fails", "error", "errored", "errors", "exception":
			continue
		}
		kept = append(kept, w)
	}
	// "coupon_invalid", "payment_declined": the adjective reads better first.
	if n := len(kept); n >= 2 && isStateAdjective(kept[n-1]) {
		kept = append([]string{kept[n-1]}, kept[:n-1]...)
	}
	return strings.Join(kept, " ")
}

func isStateAdjective(word string) bool {
	switch word {
	case "invalid", "declined", "rejected", "denied", "expired", "missing", "blocked", "unavailable",
		"forbidden", "unauthorized", "locked":
		return true
	}
	return false
}

// errorDetail is what went wrong, as ingest redacted it. An exception without a detail keeps the
// message its sentence ends with ("…: card validation failed").
func errorDetail(a messages.Action) string {
	d := strings.TrimSpace(a.Detail)
	if d == "" && a.Kind == messages.KindException {
		if i := strings.Index(a.Text, ": "); i >= 0 {
			d = strings.TrimSpace(a.Text[i+2:])
		}
	}
	if strings.EqualFold(d, strings.Join(eventWords(a.Event), " ")) {
		return "" // the detail only repeats the event name
	}
	return strings.TrimSuffix(d, ".")
}

// eventWords splits an event name ("payment_validation_failed", "paymentFailed") into lower-case words.
func eventWords(event string) []string {
	var words []string
	var word []rune
	flush := func() {
		if len(word) > 0 {
			words = append(words, strings.ToLower(string(word)))
			word = word[:0]
		}
	}
	var prev rune
	for _, r := range strings.TrimPrefix(event, "$") {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ':' || r == ' ' || r == '/':
			flush()
		case r >= 'A' && r <= 'Z' && prev >= 'a' && prev <= 'z':
			flush()
			word = append(word, r)
		default:
			word = append(word, r)
		}
		prev = r
	}
	flush()
	return words
}

// actionPhrase turns an action's own sentence into a past-tense verb phrase:
// "User started a trial on the pricing page" becomes "started a trial".
func actionPhrase(a messages.Action, page string) string {
	text := strings.TrimSuffix(strings.TrimSpace(a.Text), ".")
	text = strings.TrimPrefix(text, "User ")
	if page != "" {
		text = strings.TrimSuffix(text, " on the "+page)
	}
	if text == "" {
		if words := eventWords(a.Event); len(words) > 0 {
			return "triggered the " + strings.Join(words, " ") + " event"
		}
		return "took an action"
	}
	// A sentence without the subject starts with a capitalised verb ("Completed onboarding");
	// keep acronyms ("API key created") as they are.
	runes := []rune(text)
	if len(runes) > 1 && runes[0] >= 'A' && runes[0] <= 'Z' && !(runes[1] >= 'A' && runes[1] <= 'Z') {
		runes[0] += 'a' - 'A'
	}
	return string(runes)
}
