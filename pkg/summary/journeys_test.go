package summary

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/pkg/messages"
)

// journeyStep describes one action the way ingest produces it; journey fills in the rest.
type journeyStep struct {
	at     string // "15:04:05" UTC
	kind   string
	page   string
	target string
	detail string
	event  string // defaults to the PostHog event of the kind
	text   string // defaults to ingest's sentence for the kind
}

var journeyPaths = map[string]string{
	"pricing page":            "/pricing",
	"checkout page":           "/checkout",
	"billing settings page":   "/settings/billing",
	"order confirmation page": "/checkout/confirmation",
	"sign-up page":            "/signup",
	"welcome page":            "/welcome",
	"connect your data page":  "/onboarding/connect",
	"profile settings page":   "/settings/profile",
}

// journey builds the actions of one session on day from steps.
func journey(t testing.TB, session, day string, steps ...journeyStep) []messages.Action {
	t.Helper()
	actions := make([]messages.Action, len(steps))
	for i, s := range steps {
		at, err := time.Parse(time.DateTime, day+" "+s.at)
		if err != nil {
			t.Fatalf("journey step %d: %v", i, err)
		}
		event := s.event
		if event == "" {
			event = map[string]string{
				messages.KindPageview: "$pageview", messages.KindPageleave: "$pageleave",
				messages.KindClick: "$autocapture", messages.KindSubmit: "$autocapture",
				messages.KindChange: "$autocapture", messages.KindRageClick: "$rageclick",
				messages.KindDeadClick: "$dead_click", messages.KindException: "$exception",
				messages.KindIdentify: "$identify",
			}[s.kind]
		}
		path := journeyPaths[s.page]
		if path == "" && s.page != "" {
			path = "/" + strings.ReplaceAll(strings.TrimSuffix(s.page, " page"), " ", "-")
		}
		actions[i] = messages.Action{
			ActionID:  fmt.Sprintf("%s-%02d", session, i+1),
			SessionID: session,
			EventTime: at,
			Event:     event,
			Kind:      s.kind,
			Page:      s.page,
			Path:      path,
			Target:    s.target,
			Detail:    s.detail,
			Text:      actionText(s),
		}
	}
	return actions
}

// actionText is ingest's sentence for a step, unless the step gives its own.
func actionText(s journeyStep) string {
	if s.text != "" {
		return s.text
	}
	on := ""
	if s.page != "" {
		on = " on the " + s.page
	}
	switch s.kind {
	case messages.KindPageview:
		return "User opened the " + s.page
	case messages.KindPageleave:
		return "User left the " + s.page
	case messages.KindClick:
		return "User clicked " + s.target + on
	case messages.KindSubmit:
		return "User submitted " + s.target + on
	case messages.KindChange:
		return "User changed " + s.target + on
	case messages.KindRageClick:
		return "User rage-clicked " + s.target + on
	case messages.KindDeadClick:
		return "User clicked " + s.target + on + " but nothing happened"
	case messages.KindError, messages.KindException:
		return "User hit an error" + on + ": " + s.detail
	case messages.KindIdentify:
		return "User signed in"
	}
	return "User did " + s.event + on
}

// checkoutJourney is the shared journey: pricing, the Pro plan, checkout, a payment validation
// error, rage clicks on Pay, and a dead click in billing settings.
func checkoutJourney(t testing.TB) []messages.Action {
	return journey(t, "sess-checkout", "2025-03-04",
		journeyStep{at: "10:15:02", kind: messages.KindPageview, page: "pricing page"},
		journeyStep{at: "10:15:05", kind: messages.KindClick, page: "pricing page", target: "Select Pro button"},
		journeyStep{at: "10:15:06", kind: messages.KindPageview, page: "checkout page"},
		journeyStep{at: "10:15:13", kind: messages.KindChange, page: "checkout page", target: "email field"},
		journeyStep{at: "10:15:31", kind: messages.KindClick, page: "checkout page", target: "Pay $49.00 button"},
		journeyStep{at: "10:15:31", kind: messages.KindSubmit, page: "checkout page", target: "checkout form"},
		journeyStep{at: "10:15:31", kind: messages.KindIdentify, page: "checkout page"},
		journeyStep{at: "10:15:32", kind: messages.KindError, page: "checkout page", event: "payment_validation_failed",
			detail: "incorrect number",
			text:   "User hit an error on the checkout page: payment validation failed (incorrect number)"},
		journeyStep{at: "10:15:32", kind: messages.KindException, page: "checkout page", detail: "card validation failed",
			text: "User hit an error on the checkout page: card validation failed"},
		journeyStep{at: "10:15:34", kind: messages.KindClick, page: "checkout page", target: "Pay $49.00 button"},
		journeyStep{at: "10:15:35", kind: messages.KindClick, page: "checkout page", target: "Pay $49.00 button"},
		journeyStep{at: "10:15:35", kind: messages.KindRageClick, page: "checkout page", target: "Pay $49.00 button"},
		journeyStep{at: "10:15:35", kind: messages.KindClick, page: "checkout page", target: "Pay $49.00 button"},
		journeyStep{at: "10:15:41", kind: messages.KindClick, page: "checkout page", target: "Go to billing settings link"},
		journeyStep{at: "10:15:42", kind: messages.KindPageview, page: "billing settings page"},
		journeyStep{at: "10:15:48", kind: messages.KindDeadClick, page: "billing settings page",
			target: "Update payment method button"},
		journeyStep{at: "10:15:54", kind: messages.KindPageleave, page: "billing settings page"},
	)
}

// purchaseJourney is a successful purchase: a plan chosen, checkout filled in and paid, confirmed.
func purchaseJourney(t testing.TB) []messages.Action {
	return journey(t, "sess-purchase", "2025-03-04",
		journeyStep{at: "11:20:05", kind: messages.KindPageview, page: "pricing page"},
		journeyStep{at: "11:20:11", kind: messages.KindClick, page: "pricing page", target: "Annual billing toggle"},
		journeyStep{at: "11:20:14", kind: messages.KindClick, page: "pricing page", target: "Select Team button"},
		journeyStep{at: "11:20:15", kind: messages.KindPageview, page: "checkout page"},
		journeyStep{at: "11:20:22", kind: messages.KindChange, page: "checkout page", target: "email field"},
		journeyStep{at: "11:20:30", kind: messages.KindChange, page: "checkout page", target: "card number field"},
		journeyStep{at: "11:20:36", kind: messages.KindChange, page: "checkout page", target: "expiry date field"},
		journeyStep{at: "11:20:39", kind: messages.KindChange, page: "checkout page", target: "CVC field"},
		journeyStep{at: "11:20:44", kind: messages.KindClick, page: "checkout page", target: "Pay $99.00 button"},
		journeyStep{at: "11:20:44", kind: messages.KindSubmit, page: "checkout page", target: "checkout form"},
		journeyStep{at: "11:20:46", kind: messages.KindCustom, page: "checkout page", event: "subscription_started",
			text: "User started a Team subscription on the checkout page"},
		journeyStep{at: "11:20:47", kind: messages.KindPageview, page: "order confirmation page"},
	)
}

// onboardingJourney is an onboarding drop-off: signed up, then stuck connecting a data source.
func onboardingJourney(t testing.TB) []messages.Action {
	return journey(t, "sess-onboarding", "2025-03-04",
		journeyStep{at: "14:02:00", kind: messages.KindPageview, page: "sign-up page"},
		journeyStep{at: "14:02:09", kind: messages.KindChange, page: "sign-up page", target: "email field"},
		journeyStep{at: "14:02:15", kind: messages.KindChange, page: "sign-up page", target: "password field"},
		journeyStep{at: "14:02:18", kind: messages.KindClick, page: "sign-up page", target: "Create account button"},
		journeyStep{at: "14:02:18", kind: messages.KindSubmit, page: "sign-up page", target: "sign-up form"},
		journeyStep{at: "14:02:19", kind: messages.KindIdentify, page: "sign-up page"},
		journeyStep{at: "14:02:20", kind: messages.KindPageview, page: "welcome page"},
		journeyStep{at: "14:02:31", kind: messages.KindClick, page: "welcome page", target: "Get started button"},
		journeyStep{at: "14:02:32", kind: messages.KindPageview, page: "connect your data page"},
		journeyStep{at: "14:02:50", kind: messages.KindClick, page: "connect your data page", target: "Connect Postgres button"},
		journeyStep{at: "14:03:20", kind: messages.KindError, page: "connect your data page",
			event: "integration_connection_failed", detail: "connection timed out",
			text: "User hit an error on the connect your data page: integration connection failed (connection timed out)"},
		journeyStep{at: "14:03:31", kind: messages.KindClick, page: "connect your data page", target: "Connect Postgres button"},
		journeyStep{at: "14:04:01", kind: messages.KindError, page: "connect your data page",
			event: "integration_connection_failed", detail: "connection timed out",
			text: "User hit an error on the connect your data page: integration connection failed (connection timed out)"},
		journeyStep{at: "14:04:10", kind: messages.KindDeadClick, page: "connect your data page", target: "Skip for now link"},
		journeyStep{at: "14:04:40", kind: messages.KindPageleave, page: "connect your data page"},
	)
}

// errorLoopJourney is a repeated error loop: the same save fails again and again.
func errorLoopJourney(t testing.TB) []messages.Action {
	saveFailed := func(at string) journeyStep {
		return journeyStep{at: at, kind: messages.KindError, page: "profile settings page",
			event: "profile_update_failed", detail: "server error",
			text: "User hit an error on the profile settings page: profile update failed (server error)"}
	}
	return journey(t, "sess-loop", "2025-03-04",
		journeyStep{at: "16:40:00", kind: messages.KindPageview, page: "profile settings page"},
		journeyStep{at: "16:40:08", kind: messages.KindChange, page: "profile settings page", target: "display name field"},
		journeyStep{at: "16:40:12", kind: messages.KindClick, page: "profile settings page", target: "Save changes button"},
		journeyStep{at: "16:40:12", kind: messages.KindSubmit, page: "profile settings page", target: "profile form"},
		saveFailed("16:40:13"),
		journeyStep{at: "16:40:20", kind: messages.KindClick, page: "profile settings page", target: "Save changes button"},
		journeyStep{at: "16:40:20", kind: messages.KindSubmit, page: "profile settings page", target: "profile form"},
		saveFailed("16:40:21"),
		journeyStep{at: "16:40:27", kind: messages.KindClick, page: "profile settings page", target: "Save changes button"},
		journeyStep{at: "16:40:27", kind: messages.KindSubmit, page: "profile settings page", target: "profile form"},
		saveFailed("16:40:28"),
		journeyStep{at: "16:40:28", kind: messages.KindException, page: "profile settings page",
			detail: "request failed with status code 500"},
		journeyStep{at: "16:40:33", kind: messages.KindClick, page: "profile settings page", target: "Save changes button"},
		journeyStep{at: "16:40:33", kind: messages.KindClick, page: "profile settings page", target: "Save changes button"},
		journeyStep{at: "16:40:34", kind: messages.KindRageClick, page: "profile settings page", target: "Save changes button"},
		journeyStep{at: "16:40:34", kind: messages.KindClick, page: "profile settings page", target: "Save changes button"},
		journeyStep{at: "16:40:35", kind: messages.KindPageview, page: "profile settings page"},
		journeyStep{at: "16:40:44", kind: messages.KindChange, page: "profile settings page", target: "display name field"},
		journeyStep{at: "16:40:47", kind: messages.KindClick, page: "profile settings page", target: "Save changes button"},
		journeyStep{at: "16:40:47", kind: messages.KindSubmit, page: "profile settings page", target: "profile form"},
		saveFailed("16:40:48"),
	)
}

// browsingJourney is a long browsing session: half an hour across the marketing site and docs,
// back to pricing, ending on the contact sales page.
func browsingJourney(t testing.TB) []messages.Action {
	return journey(t, "sess-browse", "2025-03-04",
		journeyStep{at: "09:02:10", kind: messages.KindPageview, page: "home page"},
		journeyStep{at: "09:03:05", kind: messages.KindPageview, page: "features page"},
		journeyStep{at: "09:06:30", kind: messages.KindClick, page: "features page", target: "Watch demo button"},
		journeyStep{at: "09:07:00", kind: messages.KindPageview, page: "integrations page"},
		journeyStep{at: "09:09:12", kind: messages.KindPageview, page: "pricing page"},
		journeyStep{at: "09:10:00", kind: messages.KindPageview, page: "docs page"},
		journeyStep{at: "09:10:20", kind: messages.KindChange, page: "docs page", target: "search field"},
		journeyStep{at: "09:11:00", kind: messages.KindPageview, page: "API reference page"},
		journeyStep{at: "09:14:30", kind: messages.KindPageview, page: "blog page"},
		journeyStep{at: "09:16:00", kind: messages.KindPageview, page: "customers page"},
		journeyStep{at: "09:17:10", kind: messages.KindPageview, page: "careers page"},
		journeyStep{at: "09:18:00", kind: messages.KindPageview, page: "changelog page"},
		journeyStep{at: "09:19:30", kind: messages.KindPageview, page: "security page"},
		journeyStep{at: "09:27:40", kind: messages.KindPageview, page: "pricing page"},
		journeyStep{at: "09:28:10", kind: messages.KindClick, page: "pricing page", target: "Annual billing toggle"},
		journeyStep{at: "09:28:30", kind: messages.KindClick, page: "pricing page", target: "Compare plans tab"},
		journeyStep{at: "09:29:00", kind: messages.KindPageview, page: "plan comparison page"},
		journeyStep{at: "09:35:20", kind: messages.KindPageview, page: "contact sales page"},
		journeyStep{at: "09:36:02", kind: messages.KindChange, page: "contact sales page", target: "company field"},
	)
}
