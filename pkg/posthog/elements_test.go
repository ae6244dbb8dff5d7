package posthog

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"unicode"
)

func TestParseElementsChainJourney(t *testing.T) {
	chain := `a.alert-link:attr__class="alert-link"attr__data-attr="error-billing-link"attr__href="/settings/billing"href="/settings/billing"nth-child="2"nth-of-type="1"text="Go to billing settings";div.alert.alert-error:attr__class="alert alert-error"attr__role="alert"nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"`
	got := ParseElementsChain(chain)
	want := []Element{
		{Tag: "a", Classes: []string{"alert-link"}, Text: "Go to billing settings", Href: "/settings/billing", NthChild: 2, NthOfType: 1,
			Attributes: []Attribute{{"class", "alert-link"}, {"data-attr", "error-billing-link"}, {"href", "/settings/billing"}}},
		{Tag: "div", Classes: []string{"alert", "alert-error"}, NthChild: 1, NthOfType: 1,
			Attributes: []Attribute{{"class", "alert alert-error"}, {"role", "alert"}}},
		{Tag: "body", NthChild: 2, NthOfType: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseElementsChain:\n got %+v\nwant %+v", got, want)
	}

	input := ParseElementsChain(`input.form-input:attr__class="form-input"attr__id="email"attr__name="email"attr_id="email"nth-child="2"nth-of-type="1";form.checkout-form:attr__id="checkout-form"nth-child="3"nth-of-type="1"`)
	if len(input) != 2 || input[0].ID != "email" || input[0].Attr("name") != "email" || input[0].Text != "" || input[1].ID != "checkout-form" {
		t.Fatalf("input chain: %+v", input)
	}
}

func TestParseElementsChainEdgeCases(t *testing.T) {
	// Tailwind classes hold ':'; text holds ';', ':', '=' and an escaped quote
	els := ParseElementsChain(`button.md:flex.px-4:attr__class="px-4 md:flex"nth-child="1"nth-of-type="1"text="Say \"hi\"; a:b=c";div:nth-child="1"nth-of-type="1"`)
	if len(els) != 2 {
		t.Fatalf("%d elements: %+v", len(els), els)
	}
	if els[0].Tag != "button" || !reflect.DeepEqual(els[0].Classes, []string{"md:flex", "px-4"}) {
		t.Errorf("tag/classes: %q %q", els[0].Tag, els[0].Classes)
	}
	if els[0].Text != `Say "hi"; a:b=c` || els[0].Attr("class") != "px-4 md:flex" {
		t.Errorf("text %q class %q", els[0].Text, els[0].Attr("class"))
	}
	for _, garbage := range []string{"", ";;;", `a:text="unterminated`, `:=""`, `"`, `div:nth-child="x"`} {
		ParseElementsChain(garbage) // lenient: never fails, never panics
	}
	if got := ParseElementsChain(`div:nth-child="x"`); len(got) != 1 || got[0].NthChild != 0 {
		t.Errorf("bad number: %+v", got)
	}
}

func TestFormatElementsChainRoundTrip(t *testing.T) {
	els := []Element{
		{Tag: "button", Classes: []string{"btn-primary", "btn"}, Text: `Pay "now"`, NthChild: 4, NthOfType: 1,
			Attributes: []Attribute{{"type", "submit"}, {"data-attr", "pay"}}},
		{Tag: "a", Href: "/x?y=1", ID: "link", NthChild: 1, NthOfType: 1, Attributes: []Attribute{{"href", "/x?y=1"}, {"id", "link"}}},
	}
	chain := FormatElementsChain(els)
	if !strings.HasPrefix(chain, `button.btn.btn-primary:attr__data-attr="pay"attr__type="submit"nth-child="4"nth-of-type="1"text="Pay \"now\"";a:`) {
		t.Fatalf("chain = %s", chain)
	}
	back := ParseElementsChain(chain)
	els[0].Classes = []string{"btn", "btn-primary"}                           // written sorted
	els[0].Attributes = []Attribute{{"data-attr", "pay"}, {"type", "submit"}} // written sorted
	if !reflect.DeepEqual(back, els) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, els)
	}
}

func TestElementsFromArray(t *testing.T) {
	els, err := elementsFromArray([]byte(`[{"tag_name":"button","$el_text":"Update payment method","classes":["btn","btn-secondary"],"attr__class":"btn btn-secondary","attr__data-attr":"update-payment-method","nth_child":1,"nth_of_type":1},{"tag_name":"a","attr__href":"/billing","attr__id":"nav","nth_child":"2"}, 7]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Element{
		{Tag: "button", Text: "Update payment method", Classes: []string{"btn", "btn-secondary"}, NthChild: 1, NthOfType: 1,
			Attributes: []Attribute{{"class", "btn btn-secondary"}, {"data-attr", "update-payment-method"}}},
		{Tag: "a", Href: "/billing", ID: "nav", NthChild: 2, Attributes: []Attribute{{"href", "/billing"}, {"id", "nav"}}},
	}
	if !reflect.DeepEqual(els, want) {
		t.Fatalf("got %+v\nwant %+v", els, want)
	}
}

// sanitizeElements keeps only what a chain can carry unambiguously, so that formatting and parsing
// again must give it back exactly.
func sanitizeElements(els []Element) []Element {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune("\".;:=\\", r) || unicode.IsSpace(r) {
				return -1
			}
			return r
		}, s)
	}
	value := func(s string) string { return strings.ReplaceAll(s, `\`, "") }
	key := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
				return r
			}
			return -1
		}, s)
	}
	var out []Element
	for _, el := range els {
		c := Element{Tag: clean(el.Tag), Text: value(el.Text), Href: value(el.Href), ID: value(el.ID), NthChild: el.NthChild, NthOfType: el.NthOfType}
		if c.Tag == "" {
			c.Tag = "div"
		}
		for _, cl := range el.Classes {
			if cl = clean(cl); cl != "" {
				c.Classes = append(c.Classes, cl)
			}
		}
		attrs := map[string]string{}
		for _, a := range el.Attributes {
			if k := key(a.Name); k != "" && k != "id" && k != "href" {
				attrs[k] = value(a.Value)
			}
		}
		if c.ID != "" {
			attrs["id"] = c.ID
		}
		if c.Href != "" {
			attrs["href"] = c.Href
		}
		for k, v := range attrs {
			c.Attributes = append(c.Attributes, Attribute{Name: k, Value: v})
		}
		// the chain writes attributes sorted by key
		sort.Slice(c.Attributes, func(i, j int) bool { return c.Attributes[i].Name < c.Attributes[j].Name })
		out = append(out, c)
	}
	return out
}

func FuzzParseElementsChain(f *testing.F) {
	for _, s := range []string{
		`button.btn.btn-block.btn-primary:attr__class="btn btn-primary btn-block"attr__data-attr="select-plan-pro"attr__type="button"nth-child="4"nth-of-type="1"text="Select Pro";div.plan-card:nth-child="2"nth-of-type="2";body:nth-child="2"nth-of-type="1"`,
		`input.form-input:attr__id="email"attr__name="email"attr_id="email"nth-child="2"nth-of-type="1"`,
		`a:href="/x"text="a \"q\" ; b"`, `div.md:flex:nth-child="1"`, `;`, `"`, `a:b="c\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, chain string) {
		els := ParseElementsChain(chain)
		if len(els) > len(chain) {
			t.Fatalf("%d elements from %d bytes", len(els), len(chain))
		}
		clean := sanitizeElements(els)
		back := ParseElementsChain(FormatElementsChain(clean))
		for i := range clean {
			sortStrings(clean[i].Classes)
		}
		if len(clean) == 0 {
			clean = nil
		}
		if !reflect.DeepEqual(back, clean) {
			t.Fatalf("format/parse round trip of %q:\n got %+v\nwant %+v", chain, back, clean)
		}
	})
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// parseChainByParts parses a chain as parseChain does, without its single pass: each element cut
// out by elementEnd and trimmed, then parsed.
func parseChainByParts(chain string) []Element {
	var st elementStore
	for len(chain) > 0 {
		end := elementEnd(chain)
		if part := strings.TrimSpace(chain[:end]); part != "" {
			st.elements = append(st.elements, Element{})
			st.parseElement(&st.elements[len(st.elements)-1], part)
		}
		if end == len(chain) {
			break
		}
		chain = chain[end+1:]
	}
	return st.elements
}

// chainsInOnePass are chains parseFirstElement reads, and chains it must give up on.
var chainsInOnePass = []string{
	`button.btn.btn-block.btn-primary:attr__class="btn btn-primary btn-block"attr__data-attr="select-plan-pro"attr__type="button"nth-child="4"nth-of-type="1"text="Select Pro";div.plan-card:nth-child="2"nth-of-type="2";body:nth-child="2"nth-of-type="1"`,
	`button.md:flex.px-4:attr__class="px-4 md:flex"nth-child="1"nth-of-type="1"text="Say \"hi\"; a:b=c";div:nth-child="1"nth-of-type="1"`,
	`a:href="/x"text="a \"q\" ; b"`, `div.md:flex:nth-child="1"`, `;`, `"`, `a:b="c\`, `a:b="c`, `a:b="c" ; d`,
	`div ;span`, ` div;span `, "div\u00a0;p", `div:a=b;p`, `div:nth-child;x=`, `a:b="c""d"`, `a:x"b="c"`, `a"b:c="d"`,
	`a:b="c"d e="f";;g`, `a:=""`, `a:b=""c`, `a.b..c:d="e"`, `:b="c"`, `a:b="c\";d";e`, "a:b=\"c\"\t;d",
}

// TestParseChainInOnePass checks that parseChain reads chains as parsing them part by part does.
func TestParseChainInOnePass(t *testing.T) {
	for _, chain := range chainsInOnePass {
		checkChainInOnePass(t, chain)
	}
}

func checkChainInOnePass(t *testing.T, chain string) {
	t.Helper()
	if got, want := ParseElementsChain(chain), parseChainByParts(chain); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q in one pass:\n got %+v\nwant %+v", chain, got, want)
	}
}

func FuzzParseChainInOnePass(f *testing.F) {
	for _, chain := range chainsInOnePass {
		f.Add(chain)
	}
	f.Fuzz(checkChainInOnePass)
}
