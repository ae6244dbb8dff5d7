package phrasing

import (
	"strings"

	"github.com/threadline/threadline/pkg/posthog"
)

// target is what an autocapture event acted on, named for a sentence.
type target struct {
	label string // "Select Pro", "email", "checkout": already redacted, "" when nothing names it
	noun  string // "button", "link", "field", "form", …, "" for an element without a role
	field bool   // a form control: phrased "the email field"
	tag   string
	bare  string // the target named without an article (see name), set by targetOf
}

// name names the target without an article, as the Action's Target field does: "Select Pro
// button", "email field", "button", "div element".
func (t target) name() string {
	switch {
	case t.label != "" && t.noun != "":
		return t.label + " " + t.noun
	case t.label != "":
		return t.label
	case t.noun != "":
		return t.noun
	case t.tag != "":
		return t.tag + " element"
	}
	return "element"
}

// phrase names the target for a sentence: "Select Pro button", "the email field", "a button".
func (t target) phrase() string {
	switch {
	case t.label != "" && t.field:
		return "the " + t.bare
	case t.label != "":
		return t.bare
	}
	return article(t.bare) + " " + t.bare
}

// short names the target by its label alone when it has one: "Update payment method".
func (t target) short() string {
	if t.label != "" && !t.field {
		return t.label
	}
	return t.phrase()
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// interactive reports elements people act on, for choosing the target among the chain's ancestors.
func interactive(el *posthog.Element) bool {
	switch el.Tag {
	case "a", "button", "input", "select", "textarea", "label", "form", "summary", "option":
		return true
	}
	switch el.Attr("role") {
	case "button", "link", "menuitem", "tab", "checkbox", "radio", "switch", "option", "combobox", "textbox":
		return true
	}
	return el.Attr("contenteditable") == "true"
}

// noun names an element's role: "button", "link", "field", …; "" for a plain element.
func noun(el *posthog.Element) (word string, field bool) {
	switch el.Attr("role") {
	case "button":
		return "button", false
	case "link":
		return "link", false
	case "tab":
		return "tab", false
	case "menuitem":
		return "menu item", false
	case "checkbox", "switch":
		return "checkbox", true
	case "radio":
		return "option", true
	case "textbox", "combobox":
		return "field", true
	}
	switch el.Tag {
	case "a":
		return "link", false
	case "button":
		return "button", false
	case "form":
		return "form", false
	case "select":
		return "dropdown", true
	case "textarea":
		return "field", true
	case "img", "svg":
		return "image", false
	case "input":
		switch strings.ToLower(el.Attr("type")) {
		case "button", "submit", "reset", "image":
			return "button", false
		case "checkbox":
			return "checkbox", true
		case "radio":
			return "option", true
		}
		return "field", true
	}
	if el.Attr("contenteditable") == "true" {
		return "field", true
	}
	return "", false
}

// pickTarget chooses the element an autocapture event is about: the target, or its nearest
// interactive ancestor when the target itself is not one (an icon or a label inside a button). It
// returns the element's index in the chain, -1 for an empty chain.
func pickTarget(els []posthog.Element) int {
	if len(els) == 0 {
		return -1
	}
	if interactive(&els[0]) {
		return 0
	}
	for i := 1; i < len(els) && i <= 4; i++ {
		if els[i].Tag == "body" || els[i].Tag == "html" {
			break
		}
		if interactive(&els[i]) {
			return i
		}
	}
	return 0
}

// targetOf names the element an autocapture-like event acted on. Text from the page goes through
// the redactor; a form control is named by its name or id, never by a value.
func (p *Phraser) targetOf(ev *posthog.Event) target {
	idx := pickTarget(ev.Elements)
	if idx < 0 {
		// no chain: the event-level text, if the SDK sent one
		t := target{label: p.label(ev.Prop("$el_text"))}
		t.bare = t.name()
		return t
	}
	el := &ev.Elements[idx]
	t := target{tag: el.Tag}
	t.noun, t.field = noun(el)
	// the first candidate that gives a label names the target; later ones are not worked out
	found := func(c string) bool {
		t.label = p.label(c)
		return t.label != ""
	}
	humanized := func(c string) bool {
		if c == "" {
			return false
		}
		t.label = p.humanLabels.get(c, p.humanLabel)
		return t.label != ""
	}
	if t.field {
		// a form control: its accessible name, then its identifiers; never its text or value
		_ = found(el.Attr("aria-label")) || humanized(el.Attr("name")) || humanized(el.ID) ||
			humanized(el.Attr("data-attr")) || found(el.Attr("placeholder")) || found(el.Attr("title"))
	} else {
		// the element's own words, then those of what was clicked inside it, then its identifiers
		done := found(el.Text) || found(el.Attr("aria-label")) || found(el.Attr("title")) || found(el.Attr("alt"))
		for i := idx - 1; i >= 0 && !done; i-- {
			inner := &ev.Elements[i]
			done = found(inner.Text) || found(inner.Attr("aria-label")) || found(inner.Attr("title")) || found(inner.Attr("alt"))
		}
		if !done && idx == 0 {
			done = found(ev.Prop("$el_text"))
		}
		if !done {
			done = humanized(el.Attr("data-attr")) || humanized(el.Attr("name")) || humanized(el.ID)
		}
		for i := idx - 1; i >= 0 && !done; i-- {
			done = humanized(ev.Elements[i].Attr("data-attr"))
		}
	}
	// "checkout form" needs no second "form"
	if t.label != "" && t.noun != "" && strings.HasSuffix(strings.ToLower(t.label), " "+t.noun) {
		t.label = t.label[:len(t.label)-len(t.noun)-1]
	}
	if t.label != "" && strings.EqualFold(t.label, t.noun) {
		t.label = ""
	}
	t.bare = t.name()
	return t
}

// label cleans, redacts and shortens text from the page.
func (p *Phraser) label(s string) string {
	if s == "" {
		return ""
	}
	return p.labels.get(s, p.makeLabel)
}

// humanLabel is the label of an identifier, in words: "select-plan-pro" names "select plan pro".
func (p *Phraser) humanLabel(id string) string { return p.label(Humanize(id)) }

func (p *Phraser) makeLabel(s string) string {
	s = cleanText(s)
	if s == "" {
		return ""
	}
	return truncate(cleanText(p.redactor.Text(s)), p.cfg.MaxLabelLength)
}
