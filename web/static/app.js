// outbound's only hand-written script. Every page works without it; it
// only lets htmx requests carry the session's CSRF token, which forms
// carry as a hidden field.
"use strict";
document.addEventListener("htmx:configRequest", function (ev) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    ev.detail.headers["X-CSRF-Token"] = meta.content;
  }
});
