package triggers

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/threadline/threadline/pkg/redact"
	"github.com/threadline/threadline/schemas"
)

// maxFileSize bounds a rules file; real ones are a few kilobytes.
const maxFileSize = 1 << 20

// ErrInvalidRules is wrapped by every error of Load and Parse about the content of a rules file
// (as opposed to failing to read it).
var ErrInvalidRules = errors.New("invalid trigger rules")

// Problem is one thing wrong in a rules file, and where.
type Problem struct {
	Line, Column int    // 1-based position in the file; 0 when unknown
	Path         string // where in the document, like triggers[1].when.event; empty for the whole file
	Message      string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Column))
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// RulesError lists every problem found in a rules file, in file order. It wraps ErrInvalidRules.
type RulesError struct {
	Source   string
	Problems []Problem
}

// Error prints each problem as source:line:column: path: message, one per line after a heading
// when there are several.
func (e *RulesError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = e.Source + ":" + p.String()
	}
	if len(lines) == 1 {
		return fmt.Sprintf("%v: %s", ErrInvalidRules, lines[0])
	}
	return fmt.Sprintf("%v, %d problems:\n%s", ErrInvalidRules, len(lines), strings.Join(lines, "\n"))
}

// Unwrap makes errors.Is(err, ErrInvalidRules) hold.
func (e *RulesError) Unwrap() error { return ErrInvalidRules }

// Load reads and validates the rules file at path (see Parse).
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("triggers: read rules: %w", err)
	}
	return Parse(data, path)
}

// Parse reads rules from YAML, validates them against the JSON Schema schemas.TriggersFile and
// then checks what a schema cannot (unique names, dwell on pageviews only, duration bounds,
// unique metadata keys, property values that redaction would never let through). Every problem
// is reported, each with its line and column, in a *RulesError. source names the data in errors.
func Parse(data []byte, source string) (*Rules, error) {
	if len(data) > maxFileSize {
		return nil, rulesError(source, Problem{Message: fmt.Sprintf("file is %d bytes, more than the %d allowed", len(data), maxFileSize)})
	}
	body, problem := parseYAML(data)
	if problem != nil {
		return nil, rulesError(source, *problem)
	}
	var doc any
	if err := yaml.NodeToValue(body, &doc); err != nil {
		return nil, rulesError(source, yamlProblem(err))
	}
	// JSON is the common ground of YAML values and the schema validator (numbers, map keys).
	encoded, err := json.Marshal(doc)
	if err != nil {
		return nil, rulesError(source, Problem{Message: fmt.Sprintf("not representable as JSON: %v", err)})
	}
	v, err := newValidator()
	if err != nil {
		return nil, fmt.Errorf("triggers: %w", err)
	}
	if problems := v.validate(encoded, body); len(problems) > 0 {
		return nil, rulesError(source, problems...)
	}
	var raw rawFile
	if err := json.Unmarshal(encoded, &raw); err != nil { // the schema guarantees the shape
		return nil, fmt.Errorf("triggers: decode validated rules: %w", err)
	}
	rules, problems := build(raw, body)
	if len(problems) > 0 {
		return nil, rulesError(source, problems...)
	}
	rules.Source = source
	return rules, nil
}

func rulesError(source string, problems ...Problem) error {
	slices.SortStableFunc(problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &RulesError{Source: source, Problems: problems}
}

// parseYAML parses data into the body of its only document.
func parseYAML(data []byte) (ast.Node, *Problem) {
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		p := yamlProblem(err)
		return nil, &p
	}
	var docs []*ast.DocumentNode
	for _, d := range file.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d)
		}
	}
	switch {
	case len(docs) == 0:
		return nil, &Problem{Line: 1, Column: 1, Message: "the file holds no rules: want a mapping with a triggers list"}
	case len(docs) > 1:
		line, col := position(docs[1].Body)
		return nil, &Problem{Line: line, Column: col, Message: "a second YAML document: the rules must be one document"}
	}
	return docs[0].Body, nil
}

// yamlProblem turns a YAML library error into a Problem, with its position when it has one.
func yamlProblem(err error) Problem {
	var yerr yaml.Error
	if errors.As(err, &yerr) {
		p := Problem{Message: yerr.GetMessage()}
		if tk := yerr.GetToken(); tk != nil && tk.Position != nil {
			p.Line, p.Column = tk.Position.Line, tk.Position.Column
		}
		return p
	}
	return Problem{Message: err.Error()}
}

// validator holds the compiled rules schema and the compiler that resolves the subschemas named
// in validation errors (to list the fields a mapping allows).
type validator struct {
	compiler *jsonschema.Compiler
	root     *jsonschema.Schema
}

func newValidator() (*validator, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.TriggersSchema()))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", schemas.TriggersFile, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := schemas.BaseURI + schemas.TriggersFile
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("add %s: %w", schemas.TriggersFile, err)
	}
	root, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", schemas.TriggersFile, err)
	}
	return &validator{compiler: c, root: root}, nil
}

// validate checks the JSON form of the document and locates each failure in body.
func (v *validator) validate(encoded []byte, body ast.Node) []Problem {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(encoded))
	if err != nil {
		return []Problem{{Message: fmt.Sprintf("not representable as JSON: %v", err)}}
	}
	err = v.root.Validate(inst)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return []Problem{{Message: err.Error()}}
	}
	var problems []Problem
	seen := map[string]bool{}
	for _, f := range v.failures(verr, nil) {
		p := locate(body, f.loc)
		if f.key != "" {
			p = locate(body, append(slices.Clone(f.loc), f.key)) // the offending key itself
		}
		p.Message = f.msg
		if key := p.Path + "\x00" + p.Message; !seen[key] {
			seen[key] = true
			problems = append(problems, p)
		}
	}
	return problems
}

// failure is one schema failure worth telling: where and what.
type failure struct {
	loc []string
	key string // the mapping key at fault, when there is one
	msg string
}

// failures reduces a validation error tree to the failures a person needs: the leaves, with the
// branches of a oneOf that did not apply left out (type mismatches of every branch are merged into
// one "want A or B").
//
// parent is the location of e's parent: a propertyNames failure of the library can carry a wrong
// location of its own, while the object whose key failed is always its parent's.
func (v *validator) failures(e *jsonschema.ValidationError, parent []string) []failure {
	switch k := e.ErrorKind.(type) {
	case *kind.OneOf, *kind.AnyOf:
		if want, got, ok := typeMismatches(e); ok {
			return []failure{{loc: e.InstanceLocation, msg: fmt.Sprintf("got %s, want %s", got, strings.Join(want, " or "))}}
		}
		// The branch that got furthest into the value is the one the author meant; a branch that
		// failed on the value's type alone is the least likely.
		best := slices.MaxFunc(e.Causes, func(a, b *jsonschema.ValidationError) int {
			return cmp.Or(cmp.Compare(depth(a), depth(b)), cmp.Compare(onlyType(b, e), onlyType(a, e)))
		})
		return v.failures(best, e.InstanceLocation)
	case *kind.PropertyNames:
		return []failure{{loc: parent, key: k.Property, msg: keyMessage(parent, k.Property)}}
	}
	if len(e.Causes) > 0 {
		var out []failure
		for _, c := range e.Causes {
			out = append(out, v.failures(c, e.InstanceLocation)...)
		}
		return out
	}
	f := failure{loc: e.InstanceLocation, msg: v.message(e)}
	if k, ok := e.ErrorKind.(*kind.AdditionalProperties); ok && len(k.Properties) > 0 {
		f.key = k.Properties[0]
	}
	return []failure{f}
}

// typeMismatches reports whether every branch of a oneOf failed on the type of the value itself.
func typeMismatches(e *jsonschema.ValidationError) (want []string, got string, ok bool) {
	for _, c := range e.Causes {
		leaf := c
		for len(leaf.Causes) == 1 {
			leaf = leaf.Causes[0]
		}
		t, isType := leaf.ErrorKind.(*kind.Type)
		if !isType || !slices.Equal(leaf.InstanceLocation, e.InstanceLocation) {
			return nil, "", false
		}
		got = t.Got
		for _, w := range t.Want {
			if !slices.Contains(want, w) {
				want = append(want, w)
			}
		}
	}
	return want, got, len(want) > 0
}

// onlyType is 1 when the branch failed only on the type of the value at the oneOf's location.
func onlyType(branch, oneOf *jsonschema.ValidationError) int {
	leaf := branch
	for len(leaf.Causes) == 1 {
		leaf = leaf.Causes[0]
	}
	if _, ok := leaf.ErrorKind.(*kind.Type); ok && slices.Equal(leaf.InstanceLocation, oneOf.InstanceLocation) {
		return 1
	}
	return 0
}

// depth is how far into the value the deepest failure under e lies.
func depth(e *jsonschema.ValidationError) int {
	d := len(e.InstanceLocation)
	for _, c := range e.Causes {
		d = max(d, depth(c))
	}
	return d
}

// message words one leaf failure.
func (v *validator) message(e *jsonschema.ValidationError) string {
	field := lastField(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Type:
		return fmt.Sprintf("got %s, want %s", k.Got, strings.Join(k.Want, " or "))
	case *kind.Required:
		return "missing " + strings.Join(k.Missing, ", ")
	case *kind.AdditionalProperties:
		msg := "unknown field " + strings.Join(k.Properties, ", ")
		if allowed := v.allowedFields(e.SchemaURL); len(allowed) > 0 {
			msg += " (allowed: " + strings.Join(allowed, ", ") + ")"
		}
		return msg
	case *kind.MinProperties:
		if field == "when" {
			return "no condition: give at least one of " + strings.Join(v.allowedFields(e.SchemaURL), ", ")
		}
	case *kind.MinItems:
		if field == "triggers" {
			return "no rules: give at least one"
		}
	case *kind.Pattern:
		if m := patternMessages[field]; m != "" {
			return fmt.Sprintf("%q %s", k.Got, m)
		}
		if slices.Contains(e.InstanceLocation, "metadata") {
			return fmt.Sprintf("%q %s", k.Got, metadataKeyMessage)
		}
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		return fmt.Sprintf("%v is not one of %s", k.Got, strings.Join(want, ", "))
	}
	// The library's own wording, without the location it prefixes (we print our own).
	text := (&jsonschema.ValidationError{ErrorKind: e.ErrorKind}).Error()
	return strings.TrimPrefix(text, "at '': ")
}

// keyMessage words a failure of a mapping key (propertyNames).
func keyMessage(loc []string, key string) string {
	if slices.Contains(loc, "metadata") {
		return fmt.Sprintf("metadata key %q %s", key, metadataKeyMessage)
	}
	return fmt.Sprintf("key %q is not allowed here", key)
}

const metadataKeyMessage = "must not contain . or $ (Intercom refuses them); copy the property under another key: { key: property }"

// patternMessages words pattern failures of the fields that have one.
var patternMessages = map[string]string{
	"name":       "is not a past-tense verb-noun event name: two to six lowercase words joined by dashes, one of them a past-tense verb, like rage-clicked or hit-payment-error",
	"every":      "is not a duration: a number and a unit (ms, s, m, h or d), like 30s, 1h or 1d",
	"dwell":      "is not a duration: a number and a unit (ms, s, m, h or d), like 30s, 1h or 1d",
	"url":        "is not a URL path: it starts with / and has no query string or fragment",
	"url_prefix": "is not a URL path: it starts with / and has no query string or fragment",
}

// allowedFields lists the properties the object schema at schemaURL allows.
func (v *validator) allowedFields(schemaURL string) []string {
	sch, err := v.compiler.Compile(schemaURL)
	if err != nil || sch == nil {
		return nil
	}
	var names []string
	for name := range sch.Properties {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// lastField is the last mapping key of a location (skipping list indexes).
func lastField(loc []string) string {
	for i := len(loc) - 1; i >= 0; i-- {
		if _, err := strconv.Atoi(loc[i]); err != nil {
			return loc[i]
		}
	}
	return ""
}

// locate finds the YAML node at a JSON-pointer-like location and returns a Problem carrying its
// position and a readable path (triggers[1].when.event). It stops at the deepest node it finds.
func locate(body ast.Node, loc []string) Problem {
	var path strings.Builder
	line, col := position(body)
	node := body
	for _, seg := range loc {
		next, kline, kcol, isIndex := child(node, seg)
		if isIndex {
			path.WriteString("[" + seg + "]")
		} else {
			if path.Len() > 0 {
				path.WriteByte('.')
			}
			path.WriteString(seg)
		}
		if next == nil {
			continue // keep the position of the deepest node found
		}
		node = next
		line, col = kline, kcol
	}
	return Problem{Line: line, Column: col, Path: path.String()}
}

// child returns the value under seg in a mapping (key) or sequence (index), with the position to
// report for it: the key of a mapping entry, the value of a sequence item.
func child(node ast.Node, seg string) (ast.Node, int, int, bool) {
	node = unwrap(node)
	switch n := node.(type) {
	case *ast.MappingNode:
		for _, mv := range n.Values {
			if k, ok := mv.Key.(ast.ScalarNode); ok && fmt.Sprint(k.GetValue()) == seg {
				line, col := position(mv.Key)
				return mv.Value, line, col, false
			}
		}
		return nil, 0, 0, false
	case *ast.MappingValueNode:
		if k, ok := n.Key.(ast.ScalarNode); ok && fmt.Sprint(k.GetValue()) == seg {
			line, col := position(n.Key)
			return n.Value, line, col, false
		}
		return nil, 0, 0, false
	case *ast.SequenceNode:
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 || i >= len(n.Values) {
			return nil, 0, 0, err == nil
		}
		line, col := position(n.Values[i])
		return n.Values[i], line, col, true
	}
	_, err := strconv.Atoi(seg)
	return nil, 0, 0, err == nil
}

// unwrap looks through anchors and tags to the node they mark.
func unwrap(node ast.Node) ast.Node {
	for {
		switch n := node.(type) {
		case *ast.AnchorNode:
			node = n.Value
		case *ast.TagNode:
			node = n.Value
		default:
			return node
		}
	}
}

// position is where a node starts, 1-based.
func position(node ast.Node) (int, int) {
	if node == nil {
		return 0, 0
	}
	if mv, ok := node.(*ast.MappingNode); ok && !mv.IsFlowStyle && len(mv.Values) > 0 {
		node = mv.Values[0].Key // a block mapping's own token is its first value's separator
	}
	if mv, ok := node.(*ast.MappingValueNode); ok {
		node = mv.Key
	}
	tk := node.GetToken()
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

// rawFile is the shape the schema guarantees, decoded from the document's JSON form.
type rawFile struct {
	Triggers []rawRule `json:"triggers"`
}

type rawRule struct {
	Name     string            `json:"name"`
	When     rawWhen           `json:"when"`
	Every    string            `json:"every"`
	Dwell    string            `json:"dwell"`
	Metadata []json.RawMessage `json:"metadata"`
}

type rawWhen struct {
	Event       json.RawMessage            `json:"event"`
	Kind        json.RawMessage            `json:"kind"`
	URL         string                     `json:"url"`
	URLPrefix   string                     `json:"url_prefix"`
	URLContains string                     `json:"url_contains"`
	Page        string                     `json:"page"`
	Properties  map[string]json.RawMessage `json:"properties"`
}

// build turns the validated document into Rules, checking what the schema cannot.
func build(raw rawFile, body ast.Node) (*Rules, []Problem) {
	var problems []Problem
	report := func(msg string, loc ...string) {
		p := locate(body, loc)
		p.Message = msg
		problems = append(problems, p)
	}
	rules := &Rules{Triggers: make([]Rule, 0, len(raw.Triggers))}
	firstUse := map[string]int{}
	for i, rr := range raw.Triggers {
		at := func(loc ...string) []string { return append([]string{"triggers", strconv.Itoa(i)}, loc...) }
		r := Rule{Name: rr.Name, Line: locate(body, at()).Line}
		if prev, dup := firstUse[r.Name]; dup {
			report(fmt.Sprintf("%q is already the name of the rule at line %d: every rule names its own event", r.Name, prev), at("name")...)
		} else {
			firstUse[r.Name] = r.Line
		}

		var err error
		if r.When, err = buildCondition(rr.When); err != nil {
			report(err.Error(), at("when")...)
		}
		for name, values := range r.When.Properties {
			for _, value := range values {
				if len(redact.Find(value)) > 0 {
					report(fmt.Sprintf("value %q looks like personal data, which is redacted before rules see it, so it would never match", value),
						at("when", "properties", name)...)
				}
			}
		}
		if rr.Every != "" {
			if r.Every, err = parseDuration(rr.Every, MinDuration, MaxEvery); err != nil {
				report(err.Error(), at("every")...)
			}
		}
		if rr.Dwell != "" {
			if r.Dwell, err = parseDuration(rr.Dwell, MinDuration, MaxDwell); err != nil {
				report(err.Error(), at("dwell")...)
			}
			if !r.When.matchesOnlyPageviews() {
				report("a dwell rule must match pageviews only: give when.event $pageview (or $screen) or when.kind pageview", at("dwell")...)
			}
		}
		keys := map[string]bool{}
		for j, item := range rr.Metadata {
			f, err := metadataField(item)
			if err != nil {
				report(err.Error(), at("metadata", strconv.Itoa(j))...)
				continue
			}
			if keys[f.Key] {
				report(fmt.Sprintf("metadata key %q is listed twice", f.Key), at("metadata", strconv.Itoa(j))...)
				continue
			}
			keys[f.Key] = true
			r.Metadata = append(r.Metadata, f)
		}
		rules.Triggers = append(rules.Triggers, r)
	}
	return rules, problems
}

func buildCondition(w rawWhen) (Condition, error) {
	c := Condition{
		URL:         trimSlash(w.URL),
		URLPrefix:   w.URLPrefix,
		URLContains: w.URLContains,
		Page:        w.Page,
	}
	var err error
	if c.Events, err = stringOrList(w.Event); err != nil {
		return c, fmt.Errorf("event: %w", err)
	}
	if c.Kinds, err = stringOrList(w.Kind); err != nil {
		return c, fmt.Errorf("kind: %w", err)
	}
	if len(w.Properties) > 0 {
		c.Properties = make(map[string][]string, len(w.Properties))
		for name, raw := range w.Properties {
			values, err := scalarOrList(raw)
			if err != nil {
				return c, fmt.Errorf("properties.%s: %w", name, err)
			}
			c.Properties[name] = values
		}
	}
	return c, nil
}

func stringOrList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// scalarOrList reads a property value, or a list of them, as the text a property carries:
// numbers as Go formats them (49, 0.5), booleans as true or false.
func scalarOrList(raw json.RawMessage) ([]string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	}
	out := make([]string, 0, len(items))
	for _, item := range items {
		switch x := item.(type) {
		case string:
			out = append(out, x)
		case bool:
			out = append(out, strconv.FormatBool(x))
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return nil, err
			}
			out = append(out, strconv.FormatFloat(f, 'f', -1, 64))
		default:
			return nil, fmt.Errorf("unexpected %T", item)
		}
	}
	return out, nil
}

func metadataField(raw json.RawMessage) (MetadataField, error) {
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		return MetadataField{Key: name, Property: name}, nil
	}
	var rename map[string]string
	if err := json.Unmarshal(raw, &rename); err != nil {
		return MetadataField{}, err
	}
	for key, property := range rename { // the schema allows exactly one
		return MetadataField{Key: key, Property: property}, nil
	}
	return MetadataField{}, errors.New("empty metadata item")
}

// durationUnits are the units of a rules file's durations, longest name first where one is a
// prefix of another (ms before m).
var durationUnits = []struct {
	name string
	unit time.Duration
}{
	{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour},
}

// parseDuration reads a duration such as 60s, 1h30m or 1d and checks it lies within [lo, hi].
func parseDuration(s string, lo, hi time.Duration) (time.Duration, error) {
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: %w", s, err)
		}
		rest = rest[i:]
		matched := false
		for _, u := range durationUnits {
			if strings.HasPrefix(rest, u.name) {
				if n > int64(hi/u.unit)+1 {
					return 0, fmt.Errorf("%s is longer than the %s allowed", s, formatDuration(hi))
				}
				total += time.Duration(n) * u.unit
				rest = rest[len(u.name):]
				matched = true
				break
			}
		}
		if !matched {
			return 0, fmt.Errorf("%q is not a duration: unknown unit", s)
		}
	}
	switch {
	case total < lo:
		return 0, fmt.Errorf("%s is shorter than the %s allowed", s, formatDuration(lo))
	case total > hi:
		return 0, fmt.Errorf("%s is longer than the %s allowed", s, formatDuration(hi))
	}
	return total, nil
}

// formatDuration writes whole days as days (90d), anything else as Go does (1h0m0s).
func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
