package posthog

import (
	"sort"
	"strconv"
	"strings"

	"github.com/threadline/threadline/pkg/posthog/internal/jsonscan"
)

// Element is one DOM element of an autocapture event: the target first, then its ancestors.
type Element struct {
	Tag       string
	Classes   []string
	Text      string // the element's text (a, button, label, … only; never input values)
	Href      string
	ID        string // the id attribute
	NthChild  int
	NthOfType int
	// Attributes are the element's HTML attributes, named without the chain's "attr__" prefix:
	// "class", "type", "name", "aria-label", "data-attr", …
	Attributes []Attribute
}

// Attribute is one HTML attribute of an element.
type Attribute struct {
	Name, Value string
}

// Attr returns the value of the HTML attribute name ("" when absent); of a repeated name, the last.
func (e *Element) Attr(name string) string {
	for i := len(e.Attributes) - 1; i >= 0; i-- {
		if e.Attributes[i].Name == name {
			return e.Attributes[i].Value
		}
	}
	return ""
}

// Chain keys with a meaning of their own; every other key is an "attr__<name>" HTML attribute.
const (
	chainText      = "text"
	chainHref      = "href"
	chainNthChild  = "nth-child"
	chainNthOfType = "nth-of-type"
	chainAttrID    = "attr_id"
	chainAttr      = "attr__"
)

// ParseElementsChain parses PostHog's $elements_chain string, as PostHog's own parser does:
//
//	chain   := element (";" element)*        target first
//	element := tag ("." class)* ":" attr*
//	attr    := key '="' value '"'            '"' inside a value escaped as \"
//
// It is lenient like PostHog's: it never fails, and text it cannot read is left out.
func ParseElementsChain(chain string) []Element {
	var store elementStore
	return store.parseChain(chain)
}

// elementStore holds parsed elements, their classes and their attributes: each chain's elements,
// and each element's classes and attributes, are a sub-slice cut to its length, so that appending
// to one never reaches the next. A Decoder keeps one and reuses it.
type elementStore struct {
	elements []Element
	classes  []string
	attrs    []Attribute
}

func (st *elementStore) reset() {
	clear(st.elements)
	clear(st.classes)
	clear(st.attrs)
	st.elements, st.classes, st.attrs = st.elements[:0], st.classes[:0], st.attrs[:0]
}

// parseChain is ParseElementsChain into the store.
func (st *elementStore) parseChain(chain string) []Element {
	if chain == "" {
		return nil
	}
	if cap(st.elements) == 0 {
		// a new store: room for the whole chain at once, bounded by its separators (a store in
		// use grows to what its chains need, and stays)
		st.elements = make([]Element, 0, strings.Count(chain, ";")+1)
		st.classes = make([]string, 0, strings.Count(chain, "."))
		st.attrs = make([]Attribute, 0, strings.Count(chain, `="`))
	}
	start := len(st.elements)
	for len(chain) > 0 {
		st.elements = append(st.elements, Element{})
		el := &st.elements[len(st.elements)-1]
		end, ok := st.parseFirstElement(el, chain)
		if !ok {
			end = elementEnd(chain)
			if part := strings.TrimSpace(chain[:end]); part != "" {
				st.parseElement(el, part)
			} else {
				st.elements = st.elements[:len(st.elements)-1]
			}
		}
		if end < len(chain) {
			chain = chain[end+1:]
		} else {
			chain = ""
		}
	}
	if len(st.elements) == start {
		return nil
	}
	return st.elements[start:len(st.elements):len(st.elements)]
}

// parseFirstElement parses the first element of chain into el, which is zero, in the pass that
// finds where it ends: it reads what parseElement reads from the element elementEnd marks out,
// trimmed, and returns the index of the ';' that ends it (or len(chain)). It gives up on an
// element it cannot read so, leaving el and the store as they were (ok is false): one that starts
// with a space or ';', a head alone that ends with a space, a '"' outside a value.
func (st *elementStore) parseFirstElement(el *Element, chain string) (end int, ok bool) {
	if c := chain[0]; c <= ' ' || c >= 0x80 || c == ';' {
		return 0, false
	}
	// the head: up to the first ':' a key and '=' follow, as splitElement has it
	split := -1
	for i := 0; i < len(chain) && split < 0; i++ {
		switch chain[i] {
		case ';':
			end = i
		case '"':
			return 0, false
		case ':':
			j := i + 1
			for j < len(chain) && isKeyByte(chain[j]) {
				j++
			}
			if j < len(chain) && chain[j] == '=' {
				split = i
			}
			continue
		default:
			continue
		}
		break
	}
	if split < 0 {
		if end == 0 {
			end = len(chain)
		}
		if c := chain[end-1]; c <= ' ' || c >= 0x80 {
			return 0, false
		}
		st.setHead(el, chain[:end])
		st.finishElement(el, len(st.attrs))
		return end, true
	}
	st.setHead(el, chain[:split])
	classesStart, attrStart := len(st.classes)-len(el.Classes), len(st.attrs)
	// the attributes: a key runs to `="` (a quote after anything else is given up on), a value
	// to its closing quote, and a ';' between them ends the element
	for pos, i := split+1, split+1; ; i++ {
		if i == len(chain) {
			end = i
			break
		}
		if c := chain[i]; c == ';' {
			end = i
			break
		} else if c != '"' {
			continue
		}
		if i == pos || chain[i-1] != '=' {
			*el = Element{}
			st.classes, st.attrs = st.classes[:classesStart], st.attrs[:attrStart]
			return 0, false
		}
		value, rest, ok := quotedValue(chain[i+1:])
		if !ok {
			end = len(chain) // no closing quote: the value runs to the end, and is not read
			break
		}
		st.setAttr(el, chain[pos:i-1], value)
		pos = len(chain) - len(rest)
		i = pos - 1
	}
	st.finishElement(el, attrStart)
	return end, true
}

// elementEnd returns the index of the ';' that ends the first element (outside quotes), or len(s).
func elementEnd(s string) int {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case ';':
			if !inQuote {
				return i
			}
		}
	}
	return len(s)
}

// parseElement parses one element of a chain into el, which is zero.
func (st *elementStore) parseElement(el *Element, s string) {
	head, attrs := splitElement(s)
	st.setHead(el, head)
	attrStart := len(st.attrs)
	for len(attrs) > 0 {
		eq := strings.Index(attrs, `="`)
		if eq < 0 {
			break
		}
		value, rest, ok := quotedValue(attrs[eq+2:])
		if !ok {
			break
		}
		st.setAttr(el, attrs[:eq], value)
		attrs = rest
	}
	st.finishElement(el, attrStart)
}

// setHead sets the tag and classes of el from the head of its element: "tag.class1.class2".
func (st *elementStore) setHead(el *Element, head string) {
	if head == "" {
		return
	}
	tag, classes, _ := strings.Cut(head, ".")
	el.Tag = tag
	if classes != "" {
		start := len(st.classes)
		for c := range strings.SplitSeq(classes, ".") {
			if c != "" {
				st.classes = append(st.classes, c)
			}
		}
		if len(st.classes) > start {
			el.Classes = st.classes[start:len(st.classes):len(st.classes)]
		}
	}
}

// setAttr sets what the attribute key="value" of its element says of el.
func (st *elementStore) setAttr(el *Element, key, value string) {
	switch {
	case key == chainText:
		el.Text = value
	case key == chainHref:
		el.Href = value
	case key == chainNthChild:
		el.NthChild, _ = strconv.Atoi(value)
	case key == chainNthOfType:
		el.NthOfType, _ = strconv.Atoi(value)
	case key == chainAttrID:
		el.ID = value
	case strings.HasPrefix(key, chainAttr):
		st.attrs = append(st.attrs, Attribute{Name: key[len(chainAttr):], Value: value})
	case key != "":
		st.attrs = append(st.attrs, Attribute{Name: key, Value: value})
	}
}

// finishElement completes el once its attributes, from st.attrs[attrStart:], are read.
func (st *elementStore) finishElement(el *Element, attrStart int) {
	if len(st.attrs) > attrStart {
		el.Attributes = st.attrs[attrStart:len(st.attrs):len(st.attrs)]
	}
	if el.ID == "" {
		el.ID = el.Attr("id")
	}
	if el.Href == "" {
		el.Href = el.Attr("href")
	}
}

// splitElement splits "tag.class1.class2:key="v"…" at the first ':' followed by a key and '=' (class
// names may hold ':' themselves, as in Tailwind's "md:flex").
func splitElement(s string) (head, attrs string) {
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		j := i + 1
		for j < len(s) && isKeyByte(s[j]) {
			j++
		}
		if j < len(s) && s[j] == '=' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func isKeyByte(c byte) bool {
	return c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// quotedValue reads a value up to its closing '"' and unescapes \" in it.
func quotedValue(s string) (value, rest string, ok bool) {
	escaped := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			v := s[:i]
			if escaped {
				v = strings.ReplaceAll(v, `\"`, `"`)
			}
			return v, s[i+1:], true
		}
	}
	return "", "", false
}

// FormatElementsChain writes elements as posthog-js writes $elements_chain: classes sorted and without
// '"', attributes sorted by key, '"' in values escaped. ParseElementsChain reads it back.
func FormatElementsChain(elements []Element) string {
	var b strings.Builder
	for i, el := range elements {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(el.Tag)
		classes := make([]string, 0, len(el.Classes))
		for _, c := range el.Classes {
			if c = strings.ReplaceAll(c, `"`, ""); c != "" {
				classes = append(classes, c)
			}
		}
		sort.Strings(classes)
		for _, c := range classes {
			b.WriteByte('.')
			b.WriteString(c)
		}
		b.WriteByte(':')
		type kv struct{ k, v string }
		var attrs []kv
		for _, a := range el.Attributes {
			attrs = append(attrs, kv{chainAttr + a.Name, a.Value})
		}
		if el.Text != "" {
			attrs = append(attrs, kv{chainText, el.Text})
		}
		if el.Href != "" {
			attrs = append(attrs, kv{chainHref, el.Href})
		}
		if el.ID != "" {
			attrs = append(attrs, kv{chainAttrID, el.ID})
		}
		attrs = append(attrs, kv{chainNthChild, strconv.Itoa(el.NthChild)}, kv{chainNthOfType, strconv.Itoa(el.NthOfType)})
		sort.Slice(attrs, func(i, j int) bool { return attrs[i].k < attrs[j].k })
		for _, a := range attrs {
			b.WriteString(a.k)
			b.WriteString(`="`)
			b.WriteString(strings.ReplaceAll(a.v, `"`, `\"`))
			b.WriteByte('"')
		}
	}
	return b.String()
}

// elementsFromArray converts the legacy properties.$elements array (and dead clicks' array):
// [{"tag_name", "$el_text", "classes", "attr__*", "nth_child", "nth_of_type", "href", "attr_id"}].
// Items that are not objects are skipped.
func elementsFromArray(raw []byte) ([]Element, error) {
	var out []Element
	err := jsonscan.ArrayEach(raw, func(item []byte) error {
		if jsonscan.KindOf(item) != jsonscan.KindObject {
			return nil
		}
		var el Element
		err := jsonscan.ObjectEach(item, func(key, value []byte) error {
			k := string(key)
			switch {
			case k == "tag_name":
				el.Tag = scalarText(value)
			case k == "$el_text" || k == "text":
				el.Text = scalarText(value)
			case k == "href":
				el.Href = scalarText(value)
			case k == "attr_id":
				el.ID = scalarText(value)
			case k == "nth_child":
				el.NthChild = scalarInt(value)
			case k == "nth_of_type":
				el.NthOfType = scalarInt(value)
			case k == "classes":
				if jsonscan.KindOf(value) == jsonscan.KindArray {
					_ = jsonscan.ArrayEach(value, func(c []byte) error {
						if s := scalarText(c); s != "" {
							el.Classes = append(el.Classes, s)
						}
						return nil
					})
				}
			case strings.HasPrefix(k, chainAttr):
				el.Attributes = append(el.Attributes, Attribute{Name: k[len(chainAttr):], Value: scalarText(value)})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if el.ID == "" {
			el.ID = el.Attr("id")
		}
		if el.Href == "" {
			el.Href = el.Attr("href")
		}
		out = append(out, el)
		return nil
	})
	return out, err
}

// scalarText returns a raw JSON scalar as text: a string decoded, a number or boolean as written,
// null and containers as "".
func scalarText(raw []byte) string {
	switch jsonscan.KindOf(raw) {
	case jsonscan.KindString:
		s, _ := jsonscan.String(raw)
		return s
	case jsonscan.KindNumber, jsonscan.KindBool:
		return string(jsonscan.TrimSpace(raw))
	}
	return ""
}

func scalarInt(raw []byte) int {
	switch jsonscan.KindOf(raw) {
	case jsonscan.KindNumber:
		f, err := jsonscan.Float(raw)
		if err != nil || f > 1<<31 || f < -(1<<31) {
			return 0
		}
		return int(f)
	case jsonscan.KindString:
		n, _ := strconv.Atoi(scalarText(raw))
		return n
	}
	return 0
}
