// Keeps lists current without a reload: every element with
// data-refresh="<seconds>" and an id is re-fetched from the page's own URL
// and replaced by the element of the same id in the answer. Pages work
// without this script; it only saves a reload.
(function () {
  "use strict";
  function refresh(el) {
    fetch(window.location.href, { headers: { "X-Semko-Refresh": "1" }, credentials: "same-origin" })
      .then(function (res) {
        if (!res.ok) { throw new Error(res.status); }
        return res.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(el.id);
        if (fresh) { el.innerHTML = fresh.innerHTML; }
      })
      .catch(function () { /* keep the old content; try again next time */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh][id]").forEach(function (el) {
      var secs = Math.max(2, parseInt(el.getAttribute("data-refresh"), 10) || 4);
      window.setInterval(function () {
        if (!document.hidden) { refresh(el); }
      }, secs * 1000);
    });
  });
})();
