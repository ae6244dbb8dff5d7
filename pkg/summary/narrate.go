package summary

import (
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// narrate writes the account of actions (in time order). continuing means it follows a previous
// summary, so it opens with "Since then" and calls the user "they".
func narrate(actions []messages.Action, continuing bool) string {
	if len(actions) == 0 {
		return ""
	}
	first, last := timeBounds(actions)
	r := &narrator{
		clock:      newClock(first, last),
		subject:    "the user",
		errorsSeen: make(map[string]bool),
	}
	r.prefix = r.spanPrefix(first, last)
	if continuing {
		r.subject = "they"
		r.prefix = "Since then, " + r.prefix
	}
	if visits := buildVisits(actions); len(visits) > 0 {
		r.tell(visits)
	}
	if len(r.sentences) == 0 {
		// Nothing on a page (only sign-ins or events without a page): say what the actions say.
		var phrases []string
		for _, a := range actions {
			phrases = appendDetails(phrases, actionPhrase(a, ""))
		}
		r.open(oxfordJoin(phrases))
	}
	return strings.Join(r.sentences, " ")
}

func timeBounds(actions []messages.Action) (first, last time.Time) {
	for _, a := range actions {
		t := a.EventTime
		if t.IsZero() {
			continue
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	return first, last
}

// narrator assembles sentences, varying how it joins them.
type narrator struct {
	clock      clock
	prefix     string // what the first sentence opens with: the time span
	subject    string // the first sentence's subject: "the user", or "they" when continuing
	sentences  []string
	started    bool
	lastEnd    time.Time // when the last thing told happened
	connectors int       // rotates "They then", "After that, they", "Next, they"
	arrivals   int       // rotates how arriving on a new page is said
	errorsSeen map[string]bool
}

// clause is one verb phrase of a sentence: "selected the Pro plan".
type clause struct {
	text       string
	start, end time.Time
	final      bool   // nothing is added after it in the same sentence (errors, frustration)
	clicked    string // a plain single click: what was clicked, so neighbours share one "clicked"
}

func (r *narrator) spanPrefix(first, last time.Time) string {
	switch {
	case first.IsZero():
		return ""
	case first.Equal(last):
		return "at " + r.clock.format(first) + " UTC, "
	}
	return "over " + spanDuration(last.Sub(first)) + " (" + r.clock.format(first) + " to " +
		r.clock.format(last) + " UTC), "
}

func (r *narrator) be() string {
	if r.subject == "the user" {
		return "was"
	}
	return "were"
}

// open writes the first sentence: time span, subject, predicate.
func (r *narrator) open(predicate string) {
	r.sentences = append(r.sentences, capitalise(r.prefix+r.subject+" "+predicate)+".")
	r.started = true
}

// connect writes a later sentence about what happened at t, opening it with the pause before it
// when that was long, and otherwise with the next of a few connectors.
func (r *narrator) connect(t time.Time, predicate string) {
	if gap := r.gapBefore(t); gap != "" {
		r.sentences = append(r.sentences, gap+", they "+predicate+".")
		return
	}
	openings := [...]string{"They then ", "After that, they ", "Next, they "}
	r.sentences = append(r.sentences, openings[r.connectors%len(openings)]+predicate+".")
	r.connectors++
}

func (r *narrator) gapBefore(t time.Time) string {
	if r.lastEnd.IsZero() || t.IsZero() || t.Sub(r.lastEnd) < notableGap {
		return ""
	}
	return gapPhrase(t.Sub(r.lastEnd))
}

func (r *narrator) advance(t time.Time) {
	if t.After(r.lastEnd) {
		r.lastEnd = t
	}
}

// tell writes the visits in order, pages passed through without doing anything as one trail,
// and ends with where the user is now.
func (r *narrator) tell(visits []*visit) {
	final := visits[len(visits)-1]
	body := visits
	if final.page != "" && len(final.steps) == 0 {
		body = visits[:len(visits)-1] // the closing sentence says it
	}
	var trail []*visit
	for _, v := range body {
		if len(v.steps) == 0 {
			if v.page != "" {
				trail = append(trail, v)
			}
			continue
		}
		r.trail(trail)
		trail = nil
		r.visit(v)
	}
	r.trail(trail)
	r.whereNow(final)
}

func (r *narrator) trail(visits []*visit) {
	if len(visits) == 0 {
		return
	}
	var pages []string
	for _, v := range visits {
		pages = appendDetails(pages, v.page)
	}
	var predicate string
	switch {
	case len(pages) > 1:
		predicate = "browsed " + pageList(pages)
	case !r.started && visits[0].entered:
		predicate = "opened the " + pages[0]
	case !r.started:
		predicate = r.be() + " on the " + pages[0]
	case len(visits) == 1 && visits[0].revisit:
		predicate = "returned to the " + pages[0]
	default:
		predicate = "went to the " + pages[0]
	}
	if r.started {
		r.connect(visits[0].start, predicate)
	} else {
		r.open(predicate)
	}
	r.advance(visits[len(visits)-1].end)
}

// pageList names pages as one list: "the home, features, and pricing pages".
func pageList(pages []string) string {
	const named = 4
	others := 0
	if len(pages) > named+1 {
		others = len(pages) - named
		pages = pages[:named]
	}
	var list string
	if allHaveSuffix(pages, " page") {
		names := make([]string, len(pages))
		for i, p := range pages {
			names[i] = strings.TrimSuffix(p, " page")
		}
		list = "the " + oxfordJoin(names) + " pages"
	} else {
		names := make([]string, len(pages))
		for i, p := range pages {
			names[i] = "the " + p
		}
		list = oxfordJoin(names)
	}
	if others > 0 {
		list += ", plus " + numberWord(others) + " others"
	}
	return list
}

func allHaveSuffix(list []string, suffix string) bool {
	for _, s := range list {
		if !strings.HasSuffix(s, suffix) {
			return false
		}
	}
	return true
}

// visit writes what the user did on one page: the arrival and the first few steps in one
// sentence, the rest in sentences of their own; an error, rage click or dead click ends its
// sentence so it stands out.
func (r *narrator) visit(v *visit) {
	for i, chunk := range sentenceChunks(r.clauses(v)) {
		texts := make([]string, len(chunk))
		for j, c := range chunk {
			texts[j] = c.text
		}
		list := oxfordJoin(texts)
		if i == 0 {
			r.arrive(v, list, len(chunk) > 1 || strings.Contains(list, " and "))
		} else {
			r.connect(chunk[0].start, list)
		}
		r.advance(chunk[len(chunk)-1].end)
	}
	r.advance(v.end)
}

// arrive writes the sentence that brings the user to v's page and says the first things they did.
func (r *narrator) arrive(v *visit, list string, long bool) {
	page := "the " + v.page
	join := func(arrival string) string {
		if long {
			return arrival + ", where they " + list
		}
		return arrival + " and " + list
	}
	if !r.started {
		switch {
		case v.page == "":
			r.open(list)
		case v.entered:
			r.open(join("opened " + page))
		default:
			r.open(join(r.be() + " on " + page))
		}
		return
	}
	if v.page == "" {
		r.connect(v.start, list)
		return
	}
	var sentence string
	switch {
	case v.revisit:
		sentence = join("they returned to " + page)
	case r.arrivals%2 == 0:
		sentence = join("they went on to " + page)
		r.arrivals++
	default:
		sentence = "on " + page + ", they " + list
		r.arrivals++
	}
	if gap := r.gapBefore(v.start); gap != "" {
		sentence = gap + ", " + sentence
	}
	r.sentences = append(r.sentences, capitalise(sentence)+".")
}

// sentenceChunks splits a visit's clauses into sentences: at most three clauses each (a fourth
// when it is an error or frustration), and nothing after one.
func sentenceChunks(clauses []clause) [][]clause {
	var chunks [][]clause
	var cur []clause
	for _, c := range clauses {
		if len(cur) >= 3 && !c.final {
			chunks = append(chunks, cur)
			cur = nil
		}
		cur = append(cur, c)
		if c.final {
			chunks = append(chunks, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

// whereNow ends the summary with where the user is now, or was last seen.
func (r *narrator) whereNow(v *visit) {
	if v.page == "" {
		return
	}
	page := "the " + v.page
	left := ""
	if !v.end.IsZero() {
		left = " at " + r.clock.format(v.end) + " UTC"
	}
	if r.started {
		if v.left {
			r.sentences = append(r.sentences, "They were last seen on "+page+", which they left"+left+".")
		} else {
			r.sentences = append(r.sentences, "They are now on "+page+".")
		}
		return
	}
	// The whole session was this one page.
	switch {
	case v.entered && v.left:
		r.open("opened " + page + " and left it" + left)
	case v.entered:
		r.open("opened " + page + ", where they are now")
	case v.left:
		r.open(r.be() + " on " + page + " and left it" + left)
	case r.subject == "the user":
		r.open("is now on " + page)
	default:
		r.open("are now on " + page)
	}
}

// clauses phrases a visit's steps.
func (r *narrator) clauses(v *visit) []clause {
	clicked := make(map[string]bool) // targets clicked earlier on this visit: "again", "more"
	var out []clause
	for _, s := range v.steps {
		c := clause{start: s.start, end: s.end}
		switch s.kind {
		case stepClick:
			c.text, c.clicked = clickPast(s, v.page, clicked[s.target], s.clicks)
			c.final = s.rage || s.dead // frustration stands out, like an error
			clicked[s.target] = true
		case stepSubmit:
			c.text = submitPhrase(s, s.count, false)
			if s.via != "" {
				clicked[s.via] = true
			}
		case stepFill:
			c.text = fillPhrase(s.fields, false)
		case stepError:
			c.text = r.errorPast(s)
			c.final = true
		case stepReload, stepBrowse:
			c.text = pagePhrase(s, v.page, s.count, false)
		case stepOther:
			c.text = s.phrase
			if s.count > 1 {
				c.text += " " + times(s.count)
			}
		case stepLoop:
			c.text = r.loopPast(s, v.page, clicked)
			c.final = true
		}
		out = append(out, c)
	}
	return mergePlainClicks(out)
}

// mergePlainClicks lets neighbouring single clicks share one verb: "clicked A and the B link".
func mergePlainClicks(clauses []clause) []clause {
	var out []clause
	var objects []string
	for i, c := range clauses {
		if c.clicked != "" && len(objects) > 0 {
			objects = append(objects, c.clicked)
			prev := &out[len(out)-1]
			prev.text = "clicked " + oxfordJoin(objects)
			prev.end = c.end
			continue
		}
		objects = nil
		if c.clicked != "" {
			objects = []string{c.clicked}
		}
		out = append(out, clauses[i])
	}
	return out
}

// clickObject names what was clicked: a button by its label ("Pay $49.00"), other elements with
// their kind ("the Go to billing settings link").
func clickObject(target string) string {
	if target == "" {
		return "an element"
	}
	if name, ok := strings.CutSuffix(target, " button"); ok && name != "" {
		return name
	}
	for _, kind := range []string{" link", " tab", " toggle", " checkbox", " switch", " menu", " menu item",
		" icon", " image", " card", " option", " dropdown", " radio button", " banner"} {
		if strings.HasSuffix(target, kind) {
			return "the " + target
		}
	}
	return target
}

// selection names the goal of a "Select …" or "Choose …" click: on a pricing or plans page, or
// when the label says plan, the plan ("the Pro plan").
func selection(target, page string) string {
	name, isButton := strings.CutSuffix(target, " button")
	if !isButton && clickObject(target) != target {
		return "" // a link, tab, checkbox …: not a choice of plan
	}
	for _, verb := range []string{"select ", "choose ", "pick "} {
		if len(name) <= len(verb) || !strings.EqualFold(name[:len(verb)], verb) {
			continue
		}
		object := name[len(verb):]
		lowerPage, lowerObject := strings.ToLower(page), strings.ToLower(object)
		if strings.Contains(lowerPage, "pricing") || strings.Contains(lowerPage, "plan") ||
			strings.HasSuffix(lowerObject, " plan") {
			if strings.HasSuffix(lowerObject, " plan") {
				object = object[:len(object)-len(" plan")]
			}
			return "the " + object + " plan"
		}
		return object
	}
	return ""
}

// clickPast phrases a run of clicks in the past tense; before says the target was clicked
// earlier on the page. A plain single click also returns its object, to share a verb with others.
func clickPast(s step, page string, before bool, clicks int) (text, plain string) {
	object := clickObject(s.target)
	switch {
	case s.rage && s.dead:
		return "rage-clicked " + object + " but nothing happened", ""
	case s.rage && clicks >= 2 && before:
		return "rage-clicked " + object + ", clicking it " + moreTimes(clicks), ""
	case s.rage && clicks >= 2:
		return "rage-clicked " + object + ", clicking it " + times(clicks), ""
	case s.rage:
		return "rage-clicked " + object, ""
	case s.dead && clicks >= 2:
		return "clicked " + object + " " + repeatCount(clicks, before) + " but nothing happened", ""
	case s.dead && before:
		return "clicked " + object + " again but nothing happened", ""
	case s.dead:
		return "clicked " + object + " but nothing happened", ""
	case clicks >= 2:
		return "clicked " + object + " " + repeatCount(clicks, before), ""
	}
	if goal := selection(s.target, page); goal != "" {
		if before {
			return "selected " + goal + " again", ""
		}
		return "selected " + goal, ""
	}
	if before {
		return "clicked " + object + " again", ""
	}
	return "clicked " + object, object
}

func repeatCount(n int, before bool) string {
	if before {
		return moreTimes(n)
	}
	return times(n)
}

// clickBase phrases one click in the base form, for "tried twice to click Connect".
func clickBase(s step, page string) string {
	object := clickObject(s.target)
	switch {
	case s.rage:
		return "rage-click " + object
	case s.clicks <= 1 && !s.dead:
		if goal := selection(s.target, page); goal != "" {
			return "select " + goal
		}
	}
	return "click " + object
}

// submitPhrase phrases a form submission n times, in the past tense or (base) the base form:
// "submitted the checkout form by clicking Pay $49.00".
func submitPhrase(s step, n int, base bool) string {
	form := "a form"
	if s.target != "" {
		form = "the " + s.target
	}
	text := "submitted " + form
	if base {
		text = "submit " + form
	}
	if n > 1 {
		text += " " + times(n)
	}
	if s.via != "" {
		text += " by clicking " + clickObject(s.via)
	}
	return text
}

// fillPhrase phrases changes to fields: "filled in the email and password fields and changed the
// country dropdown".
func fillPhrase(targets []string, base bool) string {
	var fields, others []string
	for _, t := range targets {
		if t == "" {
			continue
		}
		isField := false
		for _, suffix := range [...]string{" field", " input", " box", " textarea", " text area"} {
			isField = isField || strings.HasSuffix(t, suffix)
		}
		if isField {
			fields = append(fields, t)
		} else {
			others = append(others, t)
		}
	}
	fill, change := "filled in ", "changed "
	if base {
		fill, change = "fill in ", "change "
	}
	var parts []string
	if len(fields) > 0 {
		parts = append(parts, fill+fieldList(fields))
	}
	if len(others) > 0 {
		names := make([]string, len(others))
		for i, o := range others {
			names[i] = "the " + o
		}
		parts = append(parts, change+oxfordJoin(names))
	}
	if len(parts) == 0 {
		return change + "an input"
	}
	return strings.Join(parts, " and ")
}

func fieldList(fields []string) string {
	if allHaveSuffix(fields, " field") {
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = strings.TrimSuffix(f, " field")
		}
		return "the " + oxfordJoin(names) + " " + pluralNoun(len(fields), "field")
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = "the " + f
	}
	return oxfordJoin(names)
}

// pagePhrase phrases reloads and further pages of the same kind, n times.
func pagePhrase(s step, page string, n int, base bool) string {
	if s.kind == stepReload {
		if base {
			return "reload the page"
		}
		if n > 1 {
			return "reloaded the page " + times(n)
		}
		return "reloaded the page"
	}
	verb := "opened "
	if base {
		verb = "open "
	}
	plural := page + "s"
	if !strings.HasSuffix(page, "page") {
		if n == 1 {
			return verb + "another view of the " + page
		}
		return verb + numberWord(n) + " more views of the " + page
	}
	if n == 1 {
		return verb + "another " + page
	}
	return verb + numberWord(n) + " more " + plural
}

// errorNoun names the errors of an error step ("a payment validation error") and returns the
// key that says whether the same error was told before.
func errorNoun(s step) (noun, bare, key string) {
	switch len(s.errNames) {
	case 0:
		return "an error", "error", "?" + strings.ToLower(strings.Join(s.details, ";"))
	case 1:
		return withArticle(s.errNames[0] + " error"), s.errNames[0] + " error", strings.ToLower(s.errNames[0])
	}
	nouns := make([]string, len(s.errNames))
	for i, n := range s.errNames {
		nouns[i] = withArticle(n + " error")
	}
	return oxfordJoin(nouns), "", ""
}

func detailsInParentheses(details []string) string {
	if len(details) == 0 {
		return ""
	}
	return " (" + strings.Join(details, "; ") + ")"
}

// errorPast phrases an error step: "hit a payment validation error (incorrect number)", or "hit
// the same payment validation error again" when it was told before.
func (r *narrator) errorPast(s step) string {
	noun, bare, key := errorNoun(s)
	seen := key != "" && key != "?" && r.errorsSeen[key]
	r.errorsSeen[key] = true
	details := detailsInParentheses(s.details)
	switch {
	case seen && s.count == 1:
		return "hit the same " + bare + " again" + details
	case s.count > 1:
		return "hit " + noun + " " + times(s.count) + details
	}
	return "hit " + noun + details
}

// loopPast phrases rounds of the same steps ending in the same error: "submitted the profile form
// three times by clicking Save changes, hitting a profile update error (server error) each time".
func (r *narrator) loopPast(s step, page string, clicked map[string]bool) string {
	errStep := s.cycle[len(s.cycle)-1]
	noun, _, key := errorNoun(errStep)
	r.errorsSeen[key] = true
	hitting := ", hitting " + noun + detailsInParentheses(errStep.details) + " each time"
	actions := s.cycle[:len(s.cycle)-1]
	defer func() {
		for _, a := range actions {
			if a.kind == stepClick {
				clicked[a.target] = true
			}
			if a.via != "" {
				clicked[a.via] = true
			}
		}
	}()
	if len(actions) == 1 {
		a := actions[0]
		switch a.kind {
		case stepClick:
			text, _ := clickPast(a, page, clicked[a.target], s.rounds*max(a.clicks, 1))
			return text + hitting
		case stepSubmit:
			return submitPhrase(a, s.rounds*a.count, false) + hitting
		case stepReload, stepBrowse:
			return pagePhrase(a, page, s.rounds*a.count, false) + hitting
		case stepFill:
			return fillPhrase(a.fields, false) + " " + times(s.rounds) + hitting
		}
	}
	bases := make([]string, len(actions))
	for i, a := range actions {
		switch a.kind {
		case stepClick:
			bases[i] = clickBase(a, page)
		case stepSubmit:
			bases[i] = submitPhrase(a, 1, true)
		case stepFill:
			bases[i] = fillPhrase(a.fields, true)
		default:
			bases[i] = pagePhrase(a, page, 1, true)
		}
	}
	return "tried " + times(s.rounds) + " to " + oxfordJoin(bases) + hitting
}
