/* SPDX-License-Identifier: ISC */
/*
 * The status page served at / on [agent] listen: dovetailctl's snapshot
 * (services, the ones not routed first, routes, certificates, reloads)
 * as one HTML document with its style inline and no script, readable on
 * a phone.  Pure: the snapshot carries the clock.
 *
 * Service names, label values, reasons and certificate subjects come from
 * the swarm's users: every string is written through html_text, which
 * escapes what HTML gives meaning to and shows control bytes as \xNN.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "dovetail.h"

/* A cut long enough for any reason dovetail writes, short for a label. */
#define STATUS_TEXT_MAX 1000

/*
 * Narrow screens: each row becomes a card, each cell a line led by its
 * column's name (data-label), so nothing scrolls sideways.
 */
static const char status_style[] =
	"body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;"
	"margin:0 auto;max-width:1200px;padding:0 12px 24px;color:#1d1d1d;"
	"background:#fff}"
	"h1{font-size:1.4em;margin:.8em 0 .2em}"
	"h2{font-size:1.15em;margin:1.6em 0 .4em}"
	"p{margin:.3em 0}"
	"nav{display:flex;flex-wrap:wrap;gap:.2em 1em}"
	"table{border-collapse:collapse;width:100%}"
	"th,td{text-align:left;vertical-align:top;padding:5px 8px;"
	"border-bottom:1px solid #ddd;overflow-wrap:break-word}"
	"th{background:#f2f2f2;font-weight:600}"
	"ul{margin:0;padding-left:1.1em}"
	"code{font:13px ui-monospace,Menlo,Consolas,monospace}"
	".ok{color:#0a6b0a}.warn{color:#8a5200;font-weight:600}"
	".bad{color:#b00020;font-weight:600}.muted{color:#666}"
	"@media (max-width:700px){"
	"table,thead,tbody,tr,th,td{display:block}"
	"thead tr{position:absolute;left:-9999px}"
	"tr{border:1px solid #ddd;border-radius:6px;margin:0 0 10px;"
	"padding:4px 2px}"
	"td{border:0;padding:2px 8px;overflow-wrap:anywhere}"
	"td::before{content:attr(data-label) ': ';font-weight:600;"
	"color:#555}}";

/*
 * s as HTML text or attribute value: & < > " ' as entities, control
 * bytes as a visible \xNN, cut at STATUS_TEXT_MAX bytes; "-" for NULL or
 * empty.  Bytes above 0x7e pass: the page is UTF-8, and no such byte can
 * open markup.
 */
static void
html_text(struct buf *b, const char *s)
{
	size_t i;
	unsigned char c;

	if (s == NULL || *s == '\0') {
		buf_adds(b, "<span class=\"muted\">-</span>");
		return;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (i == STATUS_TEXT_MAX) {
			buf_adds(b, "...");
			break;
		}
		c = (unsigned char)s[i];
		switch (c) {
		case '&':
			buf_adds(b, "&amp;");
			break;
		case '<':
			buf_adds(b, "&lt;");
			break;
		case '>':
			buf_adds(b, "&gt;");
			break;
		case '"':
			buf_adds(b, "&quot;");
			break;
		case '\'':
			buf_adds(b, "&#39;");
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				buf_addf(b, "\\x%02x", c);
			else
				buf_addc(b, (char)c);
		}
	}
}

/* The table's head; the names also label each cell on a narrow screen. */
static void
table_open(struct buf *b, const char *const *heads)
{
	size_t i;

	buf_adds(b, "<table><thead><tr>");
	for (i = 0; heads[i] != NULL; i++)
		buf_addf(b, "<th>%s</th>", heads[i]);
	buf_adds(b, "</tr></thead><tbody>\n");
}

/* A cell of column head (a constant), holding text to escape. */
static void
td(struct buf *b, const char *head, const char *text)
{
	buf_addf(b, "<td data-label=\"%s\">", head);
	html_text(b, text);
	buf_adds(b, "</td>");
}

static void
empty_row(struct buf *b, size_t ncols, const char *what)
{
	buf_addf(b, "<tr><td colspan=\"%zu\" class=\"muted\">%s</td></tr>\n",
	    ncols, what);
}

static const char *
server_class(const char *state)
{
	if (state == NULL)
		return "muted";
	if (strcmp(state, "UP") == 0)
		return "ok";
	if (strcmp(state, "DOWN") == 0 || strcmp(state, "MAINT") == 0)
		return "bad";
	return "warn";
}

static void
status_routes(struct buf *b, const struct ctl_snapshot *sn)
{
	static const char *const h[] = { "Route", "Kind", "Services",
	    "Backend", "Servers", NULL };
	size_t i, j;

	buf_addf(b, "<h2 id=\"routes\">Routes (%zu)</h2>\n", sn->nroutes);
	table_open(b, h);
	if (sn->nroutes == 0)
		empty_row(b, 5, "No route.");
	for (i = 0; i < sn->nroutes; i++) {
		const struct ctl_route *r = &sn->routes[i];

		buf_adds(b, "<tr>");
		buf_adds(b, "<td data-label=\"Route\"><code>");
		html_text(b, r->route);
		buf_adds(b, "</code></td>");
		td(b, "Kind", r->kind);
		td(b, "Services", r->services);
		td(b, "Backend", r->backend);
		buf_adds(b, "<td data-label=\"Servers\">");
		if (r->nservers == 0)
			buf_adds(b, "<span class=\"bad\">no servers</span>");
		else
			buf_adds(b, "<ul>");
		for (j = 0; j < r->nservers; j++) {
			const struct ctl_server_row *s = &r->servers[j];

			buf_addf(b, "<li><span class=\"%s\">",
			    server_class(s->state));
			html_text(b, s->state == NULL ? "unknown" : s->state);
			buf_adds(b, "</span> <code>");
			html_text(b, s->addr);
			buf_adds(b, "</code> task <code>");
			html_text(b, s->task);
			buf_adds(b, "</code>");
			if (s->node != NULL) {
				buf_adds(b, " on ");
				html_text(b, s->node);
			}
			buf_adds(b, "</li>");
		}
		if (r->nservers > 0)
			buf_adds(b, "</ul>");
		buf_adds(b, "</td></tr>\n");
	}
	buf_adds(b, "</tbody></table>\n");
}

static const char *
service_class(enum ctl_service_state st)
{
	switch (st) {
	case CTL_ROUTED:
		return "ok";
	case CTL_WAITING:
		return "warn";
	case CTL_IGNORED:
		return "muted";
	default:
		return "bad";
	}
}

/* The services not routed first: they are why one looks at the page. */
static void
status_services(struct buf *b, const struct ctl_snapshot *sn)
{
	static const char *const h[] = { "Service", "State", "Backend",
	    "Servers", "Label", "Reason", NULL };
	char n[24];
	size_t i, pass, unrouted = 0;

	for (i = 0; i < sn->nservices; i++)
		if (sn->services[i].state != CTL_ROUTED &&
		    sn->services[i].state != CTL_IGNORED)
			unrouted++;
	buf_addf(b, "<h2 id=\"services\">Services (%zu, %zu not routed)</h2>\n",
	    sn->nservices, unrouted);
	table_open(b, h);
	if (sn->nservices == 0)
		empty_row(b, 6, "No labelled service.");
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < sn->nservices; i++) {
			const struct ctl_service *s = &sn->services[i];
			int routed = s->state == CTL_ROUTED ||
			    s->state == CTL_IGNORED;

			if (routed != (pass == 1))
				continue;
			snprintf(n, sizeof(n), "%zu", s->nservers);
			buf_adds(b, "<tr>");
			td(b, "Service", s->name);
			buf_addf(b, "<td data-label=\"State\" class=\"%s\">%s"
			    "</td>", service_class(s->state),
			    ctl_service_state_name(s->state));
			td(b, "Backend", s->backend);
			td(b, "Servers", s->backend == NULL ? NULL : n);
			buf_adds(b, "<td data-label=\"Label\"><code>");
			html_text(b, s->label);
			buf_adds(b, "</code></td>");
			td(b, "Reason", s->reason);
			buf_adds(b, "</tr>\n");
		}
	}
	buf_adds(b, "</tbody></table>\n");
}

static void
status_certs(struct buf *b, const struct ctl_snapshot *sn)
{
	static const char *const h[] = { "Service", "Subject", "Hosts",
	    "Expires", "Days left", "File", NULL };
	char when[32];
	enum cert_expiry e;
	long long days;
	size_t i;

	buf_addf(b, "<h2 id=\"certs\">Certificates (%zu)</h2>\n", sn->ncerts);
	table_open(b, h);
	if (sn->ncerts == 0)
		empty_row(b, 6, "No certificate.");
	for (i = 0; i < sn->ncerts; i++) {
		const struct ctl_cert *c = &sn->certs[i];

		buf_adds(b, "<tr>");
		td(b, "Service", c->service);
		td(b, "Subject", c->subject);
		td(b, "Hosts", c->hosts);
		if (!c->parsed) {
			td(b, "Expires", NULL);
			buf_adds(b, "<td data-label=\"Days left\" "
			    "class=\"muted\">unknown</td>");
		} else {
			ctl_time(when, sizeof(when), c->not_after);
			td(b, "Expires", when);
			e = ctl_cert_expiry(sn, c);
			days = tls_days_left(c->not_after, sn->now);
			buf_addf(b, "<td data-label=\"Days left\" class=\"%s\">"
			    "%lld%s</td>", e == CERT_EXPIRED ? "bad" :
			    e == CERT_EXPIRING ? "warn" : "ok", days,
			    e == CERT_EXPIRED ? " (expired)" :
			    e == CERT_EXPIRING ? " (expiring)" : "");
		}
		buf_adds(b, "<td data-label=\"File\"><code>");
		html_text(b, c->file);
		buf_addf(b, "</code>%s</td></tr>\n", c->is_default ?
		    " (default)" : "");
	}
	buf_adds(b, "</tbody></table>\n");
}

/* Newest first. */
static void
status_reloads(struct buf *b, const struct ctl_snapshot *sn)
{
	static const char *const h[] = { "Started", "Result", "Took",
	    "Reason", "Error", NULL };
	char when[32], took[24];
	size_t i;

	buf_addf(b, "<h2 id=\"reloads\">Recent reloads (%zu)</h2>\n",
	    sn->nreloads);
	table_open(b, h);
	if (sn->nreloads == 0)
		empty_row(b, 5, "No reload since dovetail started.");
	for (i = sn->nreloads; i-- > 0;) {
		const struct ctl_reload *r = &sn->reloads[i];

		ctl_time(when, sizeof(when), r->unix_time);
		snprintf(took, sizeof(took), "%u ms", r->ms);
		buf_adds(b, "<tr>");
		td(b, "Started", when);
		buf_addf(b, "<td data-label=\"Result\" class=\"%s\">%s</td>",
		    r->error == NULL ? "ok" : "bad", r->error == NULL ? "ok" :
		    "failed");
		td(b, "Took", took);
		td(b, "Reason", r->reason);
		td(b, "Error", r->error);
		buf_adds(b, "</tr>\n");
	}
	buf_adds(b, "</tbody></table>\n");
}

/* The whole page, from sn (its clock included). */
void
status_render(struct buf *b, const struct ctl_snapshot *sn)
{
	char when[32];
	size_t i, soon = 0;

	for (i = 0; i < sn->ncerts; i++)
		if (ctl_cert_expiry(sn, &sn->certs[i]) != CERT_VALID)
			soon++;
	ctl_time(when, sizeof(when), sn->now);
	buf_adds(b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\">\n"
	    "<meta name=\"viewport\" content=\"width=device-width, "
	    "initial-scale=1\">\n<title>dovetail status</title>\n<style>");
	buf_adds(b, status_style);
	buf_adds(b, "</style></head>\n<body>\n<h1>dovetail</h1>\n");
	buf_addf(b, "<p>As of %s. ", when);
	switch (ctl_snapshot_status(sn)) {
	case CTL_STATUS_OK:
		buf_adds(b, "<span class=\"ok\">Every labelled service is "
		    "routed.</span>");
		break;
	default:
		buf_adds(b, sn->synced ? "<span class=\"bad\">Some labelled "
		    "service is not routed.</span>" : "<span class=\"warn\">"
		    "dovetail has not applied the swarm yet.</span>");
		break;
	}
	if (soon > 0)
		buf_addf(b, " <span class=\"warn\">%zu certificate%s "
		    "expiring or expired.</span>", soon, soon == 1 ? "" : "s");
	buf_adds(b, "</p>\n<nav><a href=\"#services\">Services</a>"
	    "<a href=\"#routes\">Routes</a>"
	    "<a href=\"#certs\">Certificates</a>"
	    "<a href=\"#reloads\">Reloads</a>"
	    "<a href=\"/metrics\">/metrics</a>"
	    "<a href=\"/healthz\">/healthz</a></nav>\n");
	status_services(b, sn);
	status_routes(b, sn);
	status_certs(b, sn);
	status_reloads(b, sn);
	buf_adds(b, "</body></html>\n");
}
