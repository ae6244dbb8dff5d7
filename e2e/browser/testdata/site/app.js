// The product's own start-up, as a real site has it: posthog-js pointed at Threadline's ingest
// (site-config.js, written by the test, names it), pageviews and autocapture on, each event sent as it
// is captured (request_batching off): the buttons here navigate at once, and an event still queued
// when its page goes away is lost by some Chromium builds.
// posthog-js drops the events of browsers that look automated (navigator.webdriver, HeadlessChrome);
// opt_out_useragent_filter is PostHog's switch for end-to-end tests, which keeps them (marked
// $browser_type "bot").
(function () {
  var site = window.threadlineSite;
  window.posthog.init(site.token, {
    api_host: site.apiHost,
    capture_pageview: true,
    capture_pageleave: true,
    autocapture: true,
    person_profiles: 'identified_only',
    disable_session_recording: true,
    opt_out_useragent_filter: true,
    request_batching: false,
    loaded: function () {
      document.documentElement.setAttribute('data-posthog', 'loaded');
    },
  });

  // The product navigates a moment after a click or a submit, as one does after its own work (a
  // request, a render): posthog-js has sent the event by then. An event still in flight when its page
  // goes away is lost by some Chromium builds, which is the browser's doing, not the pipeline's.
  // Buttons that lead somewhere name it in data-next, as a product's router would.
  var navigateSoon = function (url) {
    window.setTimeout(function () { window.location.assign(url); }, 300);
  };
  document.addEventListener('click', function (event) {
    var el = event.target instanceof Element ? event.target.closest('[data-next], a[href]') : null;
    if (el) {
      event.preventDefault();
      navigateSoon(el.getAttribute('data-next') || el.href);
    }
  });
  document.addEventListener('submit', function (event) {
    var form = event.target;
    event.preventDefault();
    navigateSoon(form.action + '?' + new URLSearchParams(new FormData(form)).toString());
  });
})();
