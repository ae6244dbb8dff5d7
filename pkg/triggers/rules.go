package triggers

import (
	"slices"
	"strings"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// Limits of a rules file and of the data events it produces.
const (
	// MaxRules caps the rules of one file: each names an Intercom event, and Intercom allows a
	// workspace only about 120 event names in its filters.
	MaxRules = 50
	// MaxMetadata is the most metadata keys Intercom tracks on one event.
	MaxMetadata = 10
	// MaxMetadataValue is the longest metadata string Intercom keeps, in characters.
	MaxMetadataValue = 255
	// MaxDwell is the longest dwell a rule may ask for.
	MaxDwell = 24 * time.Hour
	// MaxEvery is the longest every a rule may ask for.
	MaxEvery = 90 * 24 * time.Hour
	// MinDuration is the shortest dwell or every.
	MinDuration = time.Second
)

// Rules is a validated rules file: the rules in file order.
type Rules struct {
	// Source names where the rules came from (a file path), for logs and errors.
	Source string
	// Triggers are the rules, in file order, with unique names.
	Triggers []Rule
}

// Names lists the rules' event names in file order.
func (r *Rules) Names() []string {
	names := make([]string, len(r.Triggers))
	for i, t := range r.Triggers {
		names[i] = t.Name
	}
	return names
}

// HasDwell reports whether any rule has a dwell, that is whether the engine must follow pages.
func (r *Rules) HasDwell() bool {
	return slices.ContainsFunc(r.Triggers, func(t Rule) bool { return t.Dwell > 0 })
}

// Rule is one trigger: actions that meet When produce the data event Name for their user.
type Rule struct {
	// Name is the Intercom event_name: a past-tense verb and a noun, lowercase, joined by dashes.
	Name string
	// When holds the conditions, all of which must hold.
	When Condition
	// Every, when positive, allows at most one event per user in that period of event time.
	Every time.Duration
	// Dwell, when positive, makes the rule fire only once the user stayed that long on a page it
	// matches (the rule then matches only pageviews).
	Dwell time.Duration
	// Metadata lists the properties copied into the event.
	Metadata []MetadataField
	// Line is where the rule starts in its file.
	Line int
}

// Condition is what an action must be for a rule to match. Empty fields do not constrain.
type Condition struct {
	Events      []string // the PostHog event name is one of these
	Kinds       []string // the action kind is one of these
	URL         string   // the URL path equals this, trailing slashes aside
	URLPrefix   string   // the URL path starts with this
	URLContains string   // the URL path contains this
	Page        string   // the page name equals this, any case
	// Properties maps a property name to the values it may have (any case); all must hold.
	Properties map[string][]string
}

// MetadataField copies the property Property into the event metadata under Key.
type MetadataField struct {
	Key      string
	Property string
}

// Matches reports whether the action meets every condition of the rule.
func (r *Rule) Matches(pa *messages.ProductAction) bool { return r.When.Matches(pa) }

// Matches reports whether the action meets every condition.
func (c *Condition) Matches(pa *messages.ProductAction) bool {
	return c.matchesAction(pa) && c.matchesProperties(pa.Properties)
}

// matchesAction reports whether the action meets every condition but those on properties.
func (c *Condition) matchesAction(pa *messages.ProductAction) bool {
	a := &pa.Action
	if len(c.Events) > 0 && !slices.Contains(c.Events, a.Event) {
		return false
	}
	if len(c.Kinds) > 0 && !slices.Contains(c.Kinds, a.Kind) {
		return false
	}
	if c.URL != "" && trimSlash(a.Path) != c.URL {
		return false
	}
	if c.URLPrefix != "" && !strings.HasPrefix(a.Path, c.URLPrefix) {
		return false
	}
	if c.URLContains != "" && !strings.Contains(a.Path, c.URLContains) {
		return false
	}
	return c.Page == "" || strings.EqualFold(a.Page, c.Page)
}

// matchesProperties reports whether the properties meet every condition on them.
func (c *Condition) matchesProperties(props map[string]string) bool {
	for name, values := range c.Properties {
		v, ok := props[name]
		if !ok || !slices.ContainsFunc(values, func(want string) bool { return strings.EqualFold(v, want) }) {
			return false
		}
	}
	return true
}

// matchesOnlyPageviews reports whether the condition can only hold for pageviews, as a dwell
// rule must.
func (c *Condition) matchesOnlyPageviews() bool {
	if len(c.Kinds) > 0 {
		return !slices.ContainsFunc(c.Kinds, func(k string) bool { return k != messages.KindPageview })
	}
	if len(c.Events) > 0 {
		return !slices.ContainsFunc(c.Events, func(e string) bool { return !pageviewEvents[e] })
	}
	return false
}

// pageviewEvents are the PostHog events that open a page: web and mobile.
var pageviewEvents = map[string]bool{"$pageview": true, "$screen": true}

// trimSlash drops a trailing slash, except from the root path.
func trimSlash(p string) string {
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		return strings.TrimRight(p, "/")
	}
	return p
}
