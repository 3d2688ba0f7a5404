// The admin console's one script: times in the viewer's own time zone. Every time is rendered
// on the server as <time datetime="ISO 8601 UTC">...UTC</time>; without this script (or with
// scripts off) the console works the same and shows UTC. Dates are written the way the page's
// language writes them (<html lang>).
"use strict";
for (const element of document.querySelectorAll("time[datetime]")) {
  const when = new Date(element.getAttribute("datetime"));
  if (Number.isNaN(when.getTime())) continue;
  element.title = element.textContent; // the UTC text stays at hand
  element.textContent = when.toLocaleString(document.documentElement.lang || undefined, {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZoneName: "short",
  });
}
