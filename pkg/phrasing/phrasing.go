package phrasing

import (
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
	deny     []string
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
		p.keep[strings.TrimSpace(k)] = struct{}{}
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
	path := p.path(&ev)
	page := p.page(&ev, path)
	on := ""
	if page != "" {
		on = " on the " + page
	}
	a := messages.Action{
		ActionID:  ev.UUID,
		SessionID: ev.SessionID,
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
		a.Target = t.bare()
		switch ev.Prop("$event_type") {
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
		a.Kind, a.Target = messages.KindRageClick, t.bare()
		a.Text = "User rage-clicked " + t.phrase() + on
	case "$dead_click", "$dead_swipe":
		t := p.targetOf(&ev)
		a.Kind, a.Target = messages.KindDeadClick, t.bare()
		verb := "clicked"
		if ev.Name == "$dead_swipe" {
			verb = "swiped"
		}
		a.Text = "User " + verb + " " + t.short() + " but nothing happened" + on
	case "$copy_autocapture":
		a.Kind = messages.KindCustom
		a.Text = "User copied text" + on
		if ev.Prop("$copy_type") == "cut" {
			a.Text = "User cut text" + on
		}
	case "$exception":
		a.Kind = messages.KindException
		a.Detail = p.exceptionDetail(&ev)
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
		Properties: p.properties(&ev),
	}, true
}

// pageObject is a page as the object of a verb: "the pricing page", or "a page" when unknown.
func pageObject(page string) string {
	if page == "" {
		return "a page"
	}
	return "the " + page
}

// path returns the redacted path of the page the event happened on.
func (p *Phraser) path(ev *posthog.Event) string {
	raw := ev.Prop("$pathname")
	if raw == "" {
		raw = PathOf(ev.Prop("$current_url"))
	}
	if raw == "" {
		return ""
	}
	return PathOf(p.redactor.URL(raw))
}

// page names the page: from the path, else the mobile screen name, else the page title.
func (p *Phraser) page(ev *posthog.Event, path string) string {
	if path != "" {
		return PageName(path)
	}
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
func (p *Phraser) exceptionDetail(ev *posthog.Event) string {
	typ, msg := exceptionTypeAndMessage(ev)
	if d := describeErrorType(typ); d != "" {
		return p.label(d)
	}
	if m := p.label(msg); m != "" {
		return m
	}
	return p.label(Humanize(typ))
}

func exceptionTypeAndMessage(ev *posthog.Event) (typ, msg string) {
	if v, ok := ev.Properties.Get("$exception_list"); ok {
		if list, ok := v.([]any); ok && len(list) > 0 {
			if first, ok := list[0].(map[string]any); ok {
				typ, _ = first["type"].(string)
				msg, _ = first["value"].(string)
			}
		}
	}
	if typ == "" {
		typ = ev.Prop("$exception_type")
	}
	if msg == "" {
		msg = ev.Prop("$exception_message")
	}
	if typ == "" {
		if v, ok := ev.Properties.Get("$exception_types"); ok {
			if list, ok := v.([]any); ok && len(list) > 0 {
				typ, _ = list[0].(string)
			}
		}
	}
	return typ, msg
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

// identity carries who did the action, hashed where it is personal data.
func (p *Phraser) identity(ev *posthog.Event) messages.Identity {
	key := func(v string) string {
		if v = strings.TrimSpace(v); v == "" {
			return ""
		}
		return p.ids.IdentityKey(v)
	}
	id := messages.Identity{
		DistinctID:     key(ev.DistinctID),
		AnonDistinctID: key(ev.AnonDistinctID()),
		UserID:         key(ev.UserID()),
		IntercomUserID: key(firstNonEmpty(ev.PersonValue("intercom_user_id"), ev.Prop("intercom_user_id"))),
	}
	if id.UserID == "" && ev.Name == "$identify" {
		id.UserID = id.DistinctID // identify(userId) makes the user id the distinct id
	}
	email := firstNonEmpty(ev.PersonValue("email"), ev.PersonValue("$email"), ev.Prop("email"), ev.Prop("$email"))
	if email == "" {
		for _, v := range []string{ev.DistinctID, ev.UserID()} {
			if looksLikeEmail(v) {
				email = v
				break
			}
		}
	}
	if looksLikeEmail(email) {
		id.EmailHash = p.ids.EmailHash(email)
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
// (non-$) properties and the kept built-in ones, never identity or anything whose name looks
// sensitive.
func (p *Phraser) properties(ev *posthog.Event) map[string]string {
	if p.cfg.MaxProperties == 0 {
		return nil
	}
	var out map[string]string
	for k := range ev.Properties.Keys() {
		if len(out) >= p.cfg.MaxProperties {
			break
		}
		if !p.carried(k) {
			continue
		}
		v, _ := ev.Properties.Get(k)
		var s string
		switch v := v.(type) {
		case string:
			if looksLikeURL(k, v) {
				s = p.redactor.URL(v)
			} else {
				s = p.redactor.Text(v)
			}
			s = truncate(s, 200)
		case float64:
			s = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			s = strconv.FormatBool(v)
		default:
			continue // objects, arrays, null
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[k] = s
	}
	if ev.Name == "$exception" {
		if typ, _ := exceptionTypeAndMessage(ev); typ != "" {
			if out == nil {
				out = make(map[string]string)
			}
			out["$exception_type"] = truncate(p.redactor.Text(typ), 200)
		}
	}
	return out
}

// carried reports whether a property may travel on an action.
func (p *Phraser) carried(key string) bool {
	if strings.HasPrefix(key, "$") {
		_, ok := p.keep[key]
		return ok
	}
	switch key {
	case "distinct_id", "token", "title", "api_key", "$set", "$set_once":
		return false
	}
	lower := strings.ToLower(key)
	for _, w := range p.deny {
		if strings.Contains(lower, w) {
			return false
		}
	}
	return true
}

func looksLikeURL(key, value string) bool {
	return strings.HasSuffix(key, "url") || strings.HasSuffix(key, "pathname") || strings.HasSuffix(key, "referrer") ||
		strings.HasPrefix(value, "http://") || strings.HasPrefix(value, "https://") || strings.HasPrefix(value, "/")
}
