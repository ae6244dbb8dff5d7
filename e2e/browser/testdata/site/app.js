// The product's own start-up, as a real site has it: posthog-js pointed at Threadline's ingest
// (site-config.js, written by the test, names it), pageviews and autocapture on, a short flush interval.
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
    request_queue_config: { flush_interval_ms: 250 },
    loaded: function () {
      document.documentElement.setAttribute('data-posthog', 'loaded');
    },
  });

  // Buttons that lead somewhere name it in data-next, as a product's router would.
  document.addEventListener('click', function (event) {
    var el = event.target instanceof Element ? event.target.closest('[data-next]') : null;
    if (el) {
      window.location.assign(el.getAttribute('data-next'));
    }
  });
})();
