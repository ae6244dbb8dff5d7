package phrasing

import (
	"bytes"
	"strconv"
	"strings"
	"unicode"

	"github.com/threadline/threadline/pkg/messages"
	"github.com/threadline/threadline/pkg/posthog"
)

// Redactor removes personal data from text taken from the product before it is written anywhere.
// pkg/redact's Redactor satisfies it.
type Redactor interface {
	// Text masks personal data (emails, phone and card numbers, secrets …) in free text.
	Text(string) string
	// URL drops a URL's query string and fragment and masks personal data in the rest.
	URL(string) string
}

// IdentityHasher turns identity values into the form the linker matches: ids that are personal data
// hashed, emails always hashed.
type IdentityHasher interface {
	// IdentityKey returns v, or a hash of it when v is personal data (an email).
	IdentityKey(v string) string
	// EmailHash returns the hash of an email, as conversations carry it too.
	EmailHash(email string) string
}

// IdentityFuncs adapts two functions, such as redact.IdentityKey and redact.EmailHash, to
// IdentityHasher.
type IdentityFuncs struct {
	Key   func(string) string
	Email func(string) string
}

// IdentityKey implements IdentityHasher.
func (f IdentityFuncs) IdentityKey(v string) string { return f.Key(v) }

// EmailHash implements IdentityHasher.
func (f IdentityFuncs) EmailHash(email string) string { return f.Email(email) }

// Phraser turns PostHog events into product actions. It is safe for concurrent use.
type Phraser struct {
	cfg      Config
	redactor Redactor
	ids      IdentityHasher
	drop     map[string]struct{}
	keep     map[string]struct{}
	keepList []string // keep as a list, when it is short enough to search faster than the map
	// keepLengths has bit n set when a name in keep is n bytes long, bit 63 for any name of 63
	// bytes or more: most built-in properties are ruled out by their length alone
	keepLengths uint64
	deny        []string

	// what events of one session repeat, worked out once
	pages       memo[pageRef] // by raw path
	urlPages    memo[pageRef] // by URL, for events without a path
	labels      memo[string]
	humanLabels memo[string] // labels of identifiers (see humanLabel), by identifier
	pseudonyms  memo[string]
	emails      memo[string]
	names       memo[propertyName]
}

// pageRef is where an event happened: the redacted path and the page's name.
type pageRef struct {
	path, page string
}

// New returns a Phraser. cfg should have passed Validate (a label length below the minimum is taken
// as the default); redactor and ids must not be nil.
func New(cfg Config, redactor Redactor, ids IdentityHasher) *Phraser {
	if cfg.MaxLabelLength < 8 {
		cfg.MaxLabelLength = DefaultMaxLabelLength
	}
	p := &Phraser{
		cfg:      cfg,
		redactor: redactor,
		ids:      ids,
		drop:     make(map[string]struct{}, len(cfg.DropEvents)),
		keep:     make(map[string]struct{}, len(cfg.KeepProperties)),
	}
	for _, e := range cfg.DropEvents {
		p.drop[strings.TrimSpace(e)] = struct{}{}
	}
	for _, k := range cfg.KeepProperties {
		k = strings.TrimSpace(k)
		p.keep[k] = struct{}{}
		p.keepLengths |= lengthBit(len(k))
	}
	if len(p.keep) <= 8 {
		p.keepList = make([]string, 0, len(p.keep))
		for k := range p.keep {
			p.keepList = append(p.keepList, k)
		}
	}
	for _, w := range cfg.DenyPropertyWords {
		if w = strings.ToLower(strings.TrimSpace(w)); w != "" {
			p.deny = append(p.deny, w)
		}
	}
	return p
}

// Noise reports whether events named name are dropped by the noise rule: named in DropEvents, starting
// with one of DropPrefixes, or a built-in event without a sentence of its own when
// DropUnknownBuiltins is set.
func (p *Phraser) Noise(name string) bool {
	if _, ok := p.drop[name]; ok {
		return true
	}
	for _, prefix := range p.cfg.DropPrefixes {
		if prefix != "" && strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return p.cfg.DropUnknownBuiltins && strings.HasPrefix(name, "$") && !phrased(name)
}

// phrased reports the built-in events that have a sentence of their own.
func phrased(name string) bool {
	switch name {
	case "$pageview", "$pageleave", "$screen", "$autocapture", "$rageclick", "$dead_click", "$dead_swipe",
		"$copy_autocapture", "$exception", "$identify":
		return true
	}
	return false
}

// Action phrases ev as a product action. It returns false when ev is noise.
func (p *Phraser) Action(ev posthog.Event) (messages.ProductAction, bool) {
	if p.Noise(ev.Name) {
		return messages.ProductAction{}, false
	}
	path, page := p.where(&ev)
	var excType, excMsg string // what an $exception says failed, read once
	if ev.Name == "$exception" {
		excType, excMsg = ev.Exception()
	}
	on := ""
	if page != "" {
		on = " on the " + page
	}
	a := messages.Action{
		ActionID:  p.pseudonym(ev.UUID),
		SessionID: p.pseudonyms.get(ev.SessionID, p.pseudonym),
		EventTime: ev.Timestamp.UTC(),
		Event:     p.redactor.Text(ev.Name),
		Page:      page,
		Path:      path,
	}
	switch ev.Name {
	case "$pageview", "$screen":
		a.Kind = messages.KindPageview
		a.Text = "User opened " + pageObject(page)
	case "$pageleave":
		a.Kind = messages.KindPageleave
		a.Text = "User left " + pageObject(page)
	case "$autocapture":
		t := p.targetOf(&ev)
		a.Target = t.bare
		switch string(ev.Properties.TextBytes("$event_type")) {
		case "submit":
			a.Kind = messages.KindSubmit
			a.Text = "User submitted " + t.phrase() + on
		case "change":
			a.Kind = messages.KindChange
			a.Text = "User changed " + t.phrase() + on
		default:
			a.Kind = messages.KindClick
			a.Text = "User clicked " + t.phrase() + on
		}
	case "$rageclick":
		t := p.targetOf(&ev)
		a.Kind, a.Target = messages.KindRageClick, t.bare
		a.Text = "User rage-clicked " + t.phrase() + on
	case "$dead_click", "$dead_swipe":
		t := p.targetOf(&ev)
		a.Kind, a.Target = messages.KindDeadClick, t.bare
		verb := "clicked"
		if ev.Name == "$dead_swipe" {
			verb = "swiped"
		}
		a.Text = "User " + verb + " " + t.short() + " but nothing happened" + on
	case "$copy_autocapture":
		a.Kind = messages.KindCustom
		a.Text = "User copied text" + on
		if string(ev.Properties.TextBytes("$copy_type")) == "cut" {
			a.Text = "User cut text" + on
		}
	case "$exception":
		a.Kind = messages.KindException
		a.Detail = p.exceptionDetail(excType, excMsg)
		a.Text = "User hit an error" + on
		if a.Detail != "" {
			a.Text += ": " + a.Detail
		}
	case "$identify":
		a.Kind = messages.KindIdentify
		a.Text = "User signed in"
	default:
		name := Humanize(p.redactor.Text(ev.Name))
		if name == "" {
			name = "an event"
		}
		a.Kind = messages.KindCustom
		if errorLike(name) {
			a.Kind = messages.KindError
			a.Detail = p.customErrorDetail(&ev)
		}
		a.Text = "User triggered " + name
	}
	return messages.ProductAction{
		Version:    messages.Version,
		Action:     a,
		Identity:   p.identity(&ev),
		Properties: p.properties(&ev, excType),
	}, true
}

// pageObject is a page as the object of a verb: "the pricing page", or "a page" when unknown.
func pageObject(page string) string {
	if page == "" {
		return "a page"
	}
	return "the " + page
}

// where returns the redacted path of the page the event happened on, and the page's name.
func (p *Phraser) where(ev *posthog.Event) (path, page string) {
	var ref pageRef
	if raw := ev.Properties.TextBytes("$pathname"); len(raw) > 0 {
		ref = p.pages.getBytes(raw, p.pageAt)
	} else if u := ev.Properties.TextBytes("$current_url"); len(u) > 0 {
		ref = p.urlPages.getBytes(u, p.pageAtURL)
	}
	if ref.path != "" {
		return ref.path, ref.page
	}
	return "", p.page(ev)
}

// pageAtURL is pageAt for the path of a page's URL.
func (p *Phraser) pageAtURL(u string) pageRef {
	if raw := PathOf(u); raw != "" {
		return p.pageAt(raw)
	}
	return pageRef{}
}

// pageAt redacts the raw path of a page and names the page.
func (p *Phraser) pageAt(raw string) pageRef {
	path := PathOf(p.redactor.URL(raw))
	if path == "" {
		return pageRef{}
	}
	return pageRef{path: path, page: PageName(path)}
}

// page names a page without a path: by the mobile screen name, else the page title.
func (p *Phraser) page(ev *posthog.Event) string {
	if screen := p.label(ev.Prop("$screen_name")); screen != "" {
		return strings.ToLower(screen) + " screen"
	}
	if title := ev.Prop("title"); title != "" {
		// "Billing settings – Acme": the part before the site name
		for _, sep := range []string{" – ", " — ", " | ", " - ", " · "} {
			if i := strings.Index(title, sep); i > 0 {
				title = title[:i]
				break
			}
		}
		if t := strings.ToLower(p.label(title)); t != "" {
			if strings.HasSuffix(t, " page") {
				return t
			}
			return t + " page"
		}
	}
	return ""
}

// errorLike reports custom event names that report a failure: "payment validation failed".
func errorLike(humanized string) bool {
	for _, w := range strings.Fields(strings.ToLower(humanized)) {
		switch w {
		case "failed", "failure", "fail", "fails", "error", "errors", "errored", "exception", "invalid",
			"declined", "rejected", "denied", "crash", "crashed", "timeout":
			return true
		}
	}
	return false
}

// customErrorDetail is the redacted reason a custom error event carries.
func (p *Phraser) customErrorDetail(ev *posthog.Event) string {
	for _, k := range []string{"error_message", "error", "message", "reason", "error_code", "code"} {
		if v := p.label(ev.Prop(k)); v != "" {
			return v
		}
	}
	return ""
}

// exceptionDetail names what failed: a custom exception type humanised ("CardValidationError" →
// "card validation failed"), else the redacted message.
func (p *Phraser) exceptionDetail(typ, msg string) string {
	if d := describeErrorType(typ); d != "" {
		return p.label(d)
	}
	if m := p.label(msg); m != "" {
		return m
	}
	return p.label(Humanize(typ))
}

// describeErrorType turns an application's own exception type into words; it returns "" for the
// language's generic types, whose message says more.
func describeErrorType(typ string) string {
	switch typ {
	case "", "Error", "TypeError", "ReferenceError", "SyntaxError", "RangeError", "EvalError", "URIError",
		"AggregateError", "InternalError", "DOMException", "UnhandledRejection", "Exception", "RuntimeError":
		return ""
	}
	if i := strings.LastIndexAny(typ, ".:"); i >= 0 {
		typ = typ[i+1:] // package-qualified names
	}
	words := identifierWords(typ)
	if n := len(words); n > 0 && (words[n-1] == "error" || words[n-1] == "exception") {
		words = words[:n-1]
	}
	if len(words) == 0 {
		return ""
	}
	switch words[len(words)-1] {
	case "validation", "authentication", "authorization", "payment", "request", "connection", "load",
		"fetch", "network", "upload", "download", "parse", "parsing", "timeout", "checkout", "submission":
		return strings.Join(words, " ") + " failed"
	}
	return strings.Join(words, " ") + " error"
}

// pseudonym returns an id as it may travel on an action: as it is, or its identity hash when it is
// personal data: an email or a phone number (as IdentityHasher.IdentityKey decides, which the
// conversation side hashes alike, so the linker still matches it), or anything else the redactor
// would mask (a card number, a national id, a token). Ids sent by a server SDK are not checked by
// anyone before they reach Threadline.
func (p *Phraser) pseudonym(v string) string {
	if v == "" {
		return ""
	}
	// IdentityKey hashes what holds an '@' (encoded or not) whatever the redactor thinks of it, and
	// otherwise only what the redactor masks (a phone number): one scan decides for clean ids
	if !strings.Contains(v, "@") && !strings.Contains(v, "%40") && p.redactor.Text(v) == v {
		return v
	}
	if k := p.ids.IdentityKey(v); k != v {
		return k
	}
	return p.ids.EmailHash(v)
}

// identity carries who did the action, hashed where it is personal data.
func (p *Phraser) identity(ev *posthog.Event) messages.Identity {
	// an absent id, the most common, needs no memo: its pseudonym is ""
	key := func(v string) string {
		if v = strings.TrimSpace(v); v == "" {
			return ""
		}
		return p.pseudonyms.get(v, p.pseudonym)
	}
	keyBytes := func(v []byte) string {
		if v = bytes.TrimSpace(v); len(v) == 0 {
			return ""
		}
		return p.pseudonyms.getBytes(v, p.pseudonym)
	}
	userID := ev.Properties.TextBytes("$user_id")
	id := messages.Identity{
		DistinctID:     key(ev.DistinctID),
		AnonDistinctID: keyBytes(ev.Properties.TextBytes("$anon_distinct_id")),
		UserID:         keyBytes(userID),
		IntercomUserID: key(firstNonEmpty(ev.PersonValue("intercom_user_id"), ev.Prop("intercom_user_id"))),
	}
	if id.UserID == "" && ev.Name == "$identify" {
		id.UserID = id.DistinctID // identify(userId) makes the user id the distinct id
	}
	email := firstNonEmpty(ev.PersonValue("email"), ev.PersonValue("$email"), ev.Prop("email"), ev.Prop("$email"))
	if email == "" {
		for _, v := range []string{ev.DistinctID, string(userID)} {
			if looksLikeEmail(v) {
				email = v
				break
			}
		}
	}
	if looksLikeEmail(email) {
		id.EmailHash = p.emails.get(email, p.ids.EmailHash)
	}
	return id
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

func looksLikeEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-3 && strings.Contains(s[at:], ".") && !strings.ContainsFunc(s, unicode.IsSpace)
}

// properties selects the redacted scalar properties carried for trigger rules: the event's own
// (non-$) properties and the kept built-in ones, never identity, anything whose name looks
// sensitive, or a property whose name is itself personal data (a custom property named by an
// email address). excType is the type an $exception names.
func (p *Phraser) properties(ev *posthog.Event, excType string) map[string]string {
	if p.cfg.MaxProperties == 0 {
		return nil
	}
	var out map[string]string
	for kb := range ev.Properties.KeyBytes() {
		if len(out) >= p.cfg.MaxProperties {
			break
		}
		if !p.listed(kb) {
			continue
		}
		name := p.names.getBytes(kb, p.propertyName)
		if !name.carried {
			continue
		}
		k := name.key
		var s string
		raw, _ := ev.Properties.Raw(k) // the last of a repeated key, as a decoded object has it
		switch {
		case len(raw) == 0:
			continue
		case raw[0] == '"':
			v := ev.Properties.String(k)
			if looksLikeURL(k, v) {
				s = p.redactor.URL(v)
			} else {
				s = p.redactor.Text(v)
			}
			s = truncate(s, 200)
		case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
			// a number, written as its float64 is (one out of range is left out)
			f, err := strconv.ParseFloat(string(raw), 64)
			if err != nil {
				continue
			}
			s = strconv.FormatFloat(f, 'f', -1, 64)
		case string(raw) == "true":
			s = "true"
		case string(raw) == "false":
			s = "false"
		default:
			continue // objects, arrays, null
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[k] = s
	}
	if ev.Name == "$exception" {
		if typ := excType; typ != "" {
			if out == nil {
				out = make(map[string]string)
			}
			out["$exception_type"] = truncate(p.redactor.Text(typ), 200)
		}
	}
	return out
}

// propertyName is what properties remembers of a property name listed() lets through.
type propertyName struct {
	key     string
	carried bool // the name holds no sensitive word and is not itself personal data
}

// propertyName decides whether a name listed() lets through may travel on an action: a property
// of the event's own must not be named with a sensitive word, and no name may be personal data
// itself.
func (p *Phraser) propertyName(k string) propertyName {
	if !strings.HasPrefix(k, "$") {
		lower := strings.ToLower(k)
		for _, w := range p.deny {
			if strings.Contains(lower, w) {
				return propertyName{key: k}
			}
		}
	}
	return propertyName{key: k, carried: p.redactor.Text(k) == k}
}

// listed reports whether a property named key may travel on an action as far as the lists of
// names tell, which are quicker to look at than the memo of propertyName: a built-in property
// must be kept, and a property of the event's own must not be one of those that name who sent it.
func (p *Phraser) listed(key []byte) bool {
	if len(key) > 0 && key[0] == '$' {
		if p.keepLengths&lengthBit(len(key)) == 0 {
			return false
		}
		if p.keepList != nil {
			for _, k := range p.keepList {
				if string(key) == k {
					return true
				}
			}
			return false
		}
		_, ok := p.keep[string(key)]
		return ok
	}
	switch string(key) {
	case "distinct_id", "token", "title", "api_key", "$set", "$set_once":
		return false
	}
	return true
}

// lengthBit is the bit of Phraser.keepLengths for a name n bytes long.
func lengthBit(n int) uint64 { return 1 << min(n, 63) }

func looksLikeURL(key, value string) bool {
	return strings.HasSuffix(key, "url") || strings.HasSuffix(key, "pathname") || strings.HasSuffix(key, "referrer") ||
		strings.HasPrefix(value, "http://") || strings.HasPrefix(value, "https://") || strings.HasPrefix(value, "/")
}
