/*
 * Service labels to a route specification.  Labels are written by whoever
 * can create a service, so everything here is validated against what
 * HAProxy and DNS accept before it can reach a file or a runtime command.
 * A bad label makes its own service an error; nothing else is affected.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

#define HOST_MAX 253
#define HOST_LABEL_MAX 63
#define NETWORK_NAME_MAX 255

/*
 * A host name as a Host header carries it, lower case: dot-separated
 * labels of letters, digits and inner hyphens (RFC 1123).
 */
int
label_valid_host(const char *h)
{
	size_t len = 0, label = 0;
	const char *p;

	for (p = h; *p != '\0'; p++, len++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '-')
			return 0;
		if (*p == '-' && label == 0)
			return 0;
		if (++label > HOST_LABEL_MAX)
			return 0;
	}
	if (len == 0 || len > HOST_MAX || label == 0 || p[-1] == '-')
		return 0;
	return 1;
}

int
label_parse_port(const char *s, uint16_t *port)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)*s) || strlen(s) > 5)
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int
valid_network_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > NETWORK_NAME_MAX)
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && strchr("_.-", *s) == NULL)
			return 0;
	}
	return 1;
}

void
route_spec_free(struct route_spec *r)
{
	size_t i;

	for (i = 0; i < r->nhosts; i++)
		free(r->hosts[i]);
	free(r->hosts);
	free(r->network);
	memset(r, 0, sizeof(*r));
}

void
problem_free(struct problem *p)
{
	free(p->service);
	free(p->label);
	free(p->message);
	memset(p, 0, sizeof(*p));
}

static enum labels_result
fail(struct problem *pb, const struct service *s, const char *prefix,
    const char *label, char *message)
{
	pb->service = xstrdup(s->name);
	pb->label = label == NULL ? NULL : xasprintf("%s.%s", prefix, label);
	pb->message = message;
	return LABELS_ERROR;
}

static const char *
label_of(const struct service *s, const char *prefix, const char *name)
{
	char key[256];

	if ((size_t)snprintf(key, sizeof(key), "%s.%s", prefix, name) >=
	    sizeof(key))
		return NULL;
	return service_label(s, key);
}

static int
parse_hosts(const char *value, struct route_spec *r, char **message)
{
	const char *p, *end;
	char *host;
	size_t i, len;

	for (p = value; *p != '\0'; p = *end == ',' ? end + 1 : end) {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		while (p < end && *p == ' ')
			p++;
		len = (size_t)(end - p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0)
			continue;
		host = xstrndup(p, len);
		for (i = 0; i < len; i++)
			host[i] = (char)tolower((unsigned char)host[i]);
		if (!label_valid_host(host)) {
			*message = xasprintf("\"%s\" is not a host name "
			    "(letters, digits, '-' and '.' only)", esc(host));
			free(host);
			return -1;
		}
		for (i = 0; i < r->nhosts; i++) {
			if (strcmp(r->hosts[i], host) == 0)
				break;
		}
		if (i < r->nhosts) {
			free(host);
			continue;
		}
		r->hosts = xreallocarray(r->hosts, r->nhosts + 1,
		    sizeof(char *));
		r->hosts[r->nhosts++] = host;
	}
	if (r->nhosts == 0) {
		*message = xstrdup("no host name in the list");
		return -1;
	}
	sort_array(r->hosts, r->nhosts, sizeof(char *), str_cmp_ptr);
	return 0;
}

/*
 * Reads the routing labels of s.  Returns LABELS_ROUTED with r filled,
 * LABELS_IGNORED when s is not for this agent (no hosts label, or another
 * service cluster), or LABELS_ERROR with pb filled (new strings).
 */
enum labels_result
labels_parse(const struct service *s, const char *prefix, const char *cluster,
    struct route_spec *r, struct problem *pb)
{
	const char *hosts, *port, *network, *svc_cluster;
	char *message;

	memset(r, 0, sizeof(*r));
	memset(pb, 0, sizeof(*pb));

	svc_cluster = label_of(s, prefix, "service_cluster");
	if (svc_cluster == NULL)
		svc_cluster = "";
	if (strcmp(svc_cluster, cluster) != 0)
		return LABELS_IGNORED;

	hosts = label_of(s, prefix, "hosts");
	if (hosts == NULL)
		return LABELS_IGNORED;
	if (parse_hosts(hosts, r, &message) == -1) {
		route_spec_free(r);
		return fail(pb, s, prefix, "hosts", message);
	}

	port = label_of(s, prefix, "port");
	if (port == NULL) {
		route_spec_free(r);
		return fail(pb, s, prefix, "port", xstrdup("missing: the "
		    "container port the service listens on is required"));
	}
	if (label_parse_port(port, &r->port) == -1) {
		route_spec_free(r);
		return fail(pb, s, prefix, "port", xasprintf("\"%s\" is not "
		    "a port number (1-65535)", esc(port)));
	}

	network = label_of(s, prefix, "network");
	if (network != NULL) {
		if (!valid_network_name(network)) {
			route_spec_free(r);
			return fail(pb, s, prefix, "network", xasprintf(
			    "\"%s\" is not a network name", esc(network)));
		}
		r->network = xstrdup(network);
	}
	return LABELS_ROUTED;
}
