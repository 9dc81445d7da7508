/* SPDX-License-Identifier: MIT */
/*
 * http.c - HTTP in one module (http.h): the libmicrohttpd server that the
 * publisher's HTTP mapping runs on, and the libcurl client that the
 * replicator (and inspect's fetch of a URL) use.
 *
 * The server parses the requests, bounds them (connections, memory,
 * timeouts) and speaks TLS; it runs in external-polling mode, its epoll
 * descriptor one of the caller's, so every callback runs in the caller's
 * thread between two polls.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"

/* Seconds a client allows for connecting. */
#define CONNECT_TIMEOUT_S 30L
/* Redirects a client follows. */
#define MAX_REDIRS 10L

/* --- server ----------------------------------------------------------------- */

/* libmicrohttpd's messages: while starting, the reason it cannot; then the log. */
static void server_log(void *cd, const char *fmt, va_list ap) WS_PRINTF(2, 0);

static void server_log(void *cd, const char *fmt, va_list ap)
{
	struct ws_http_server *h = cd;
	char msg[WS_ERRLEN];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = 0;
	/* Our messages start lowercase ("Failed to ...", not "TLS ..."). */
	if (msg[0] >= 'A' && msg[0] <= 'Z' && msg[1] >= 'a' && msg[1] <= 'z')
		msg[0] = (char)(msg[0] - 'A' + 'a');
	if (!h->mhd)
		snprintf(h->err, sizeof(h->err), "%s", msg);
	else
		ws_log_printf(h->log, h->log_cd, "HTTP: %s", msg);
}

int ws_http_serve(struct ws_http_server *h, const struct ws_http_server_opts *o)
{
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};

	memset(h, 0, sizeof(*h));
	h->log = o->log;
	h->log_cd = o->log_cd;
	if (o->cert_pem && o->key_pem) {
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
		    (void *)o->cert_pem};
		tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
		    (void *)o->key_pem};
	}
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, o->on_request, o->cd,
	    MHD_OPTION_EXTERNAL_LOGGER, server_log, h,
	    MHD_OPTION_NOTIFY_COMPLETED, o->on_done, o->cd,
	    MHD_OPTION_LISTEN_SOCKET, o->fd,
	    MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s,
	    MHD_OPTION_CONNECTION_LIMIT, o->max_conn,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->max_per_ip,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->memory,
	    MHD_OPTION_STRICT_FOR_CLIENT, 1,
	    MHD_OPTION_ARRAY, tls,
	    MHD_OPTION_END);
	return h->mhd ? 0 : WS_EIO;
}

int ws_http_fd(const struct ws_http_server *h)
{
	const union MHD_DaemonInfo *di;

	if (!h->mhd || !(di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD)))
		return -1;
	return di->epoll_fd;
}

void ws_http_timeout(const struct ws_http_server *h, int *timeout_ms)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (h->mhd && MHD_get_timeout(h->mhd, &ms) == MHD_YES && ms < (unsigned)*timeout_ms)
		*timeout_ms = (int)ms;
}

void ws_http_run(struct ws_http_server *h)
{
	if (h->mhd)
		MHD_run(h->mhd);
}

void ws_http_stop(struct ws_http_server *h)
{
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	h->mhd = NULL;
}

enum MHD_Result ws_http_respond(struct MHD_Connection *c, unsigned status,
    const char *type, const char *const *headers, const void *body, size_t n)
{
	struct MHD_Response *r;
	enum MHD_Result ok;

	if (!(r = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY)))
		return MHD_NO;
	ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (ok == MHD_YES)
		ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	for (; ok == MHD_YES && headers && headers[0]; headers += 2)
		ok = MHD_add_response_header(r, headers[0], headers[1]);
	if (ok == MHD_YES)
		ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

const char *ws_http_peer(struct MHD_Connection *c, char buf[64])
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, 64, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    buf, 64);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    buf, 64);
	else if (sa && sa->sa_family == AF_UNIX)
		snprintf(buf, 64, "unix");
	return buf;
}

int ws_http_local_only(int fd)
{
	struct sockaddr_storage ss;
	socklen_t n = sizeof(ss);
	const struct sockaddr_in6 *a6 = (const void *)&ss;
	const struct sockaddr_in *a4 = (const void *)&ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &n) < 0)
		return 0;
	if (ss.ss_family == AF_UNIX)
		return 1;
	if (ss.ss_family == AF_INET)
		return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && a6->sin6_addr.s6_addr[12] == 127);
	return 0;
}

/* --- client ------------------------------------------------------------------ */

int ws_http_global_init(char *err)
{
	static int ready;

	if (!ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			return ws_error(err, WS_EINTERNAL, "cannot initialise libcurl");
		ready = 1;
	}
	return 0;
}

int ws_http_client_init(struct ws_http_client *c, const char *url, const char *agent)
{
	const char *ca = getenv("CURL_CA_BUNDLE");

	memset(c, 0, sizeof(*c));
	if (!(c->curl = curl_easy_init()))
		return WS_ENOMEM;
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, agent);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->cerr);
	/* As curl(1) does: libcurl itself does not read CURL_CA_BUNDLE. */
	if (ca && *ca)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, ca);
	return 0;
}

void ws_http_client_release(struct ws_http_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->hdrs);
	memset(c, 0, sizeof(*c));
}

void ws_http_client_follow(struct ws_http_client *c, const char *protocols)
{
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, protocols);
	curl_easy_setopt(c->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c->curl, CURLOPT_MAXREDIRS, MAX_REDIRS);
	curl_easy_setopt(c->curl, CURLOPT_FAILONERROR, 1L);
}

struct sink {
	ws_http_sink_fn *fn;
	void *cd;
};

static size_t to_sink(char *p, size_t size, size_t n, void *cd)
{
	struct sink *k = cd;

	return k->fn(k->cd, p, size * n) ? 0 : size * n;
}

static int to_buf(void *cd, const void *p, size_t n)
{
	return ws_buf_append(cd, p, n);
}

/* Perform the request set up on c, its body to sink. */
static CURLcode perform(struct ws_http_client *c, ws_http_sink_fn *fn, void *cd,
    long *status)
{
	struct sink k = {fn, cd};
	CURLcode cc;

	*status = 0;
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, to_sink);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &k);
	c->cerr[0] = 0;
	cc = curl_easy_perform(c->curl);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	return cc;
}

CURLcode ws_http_get(struct ws_http_client *c, ws_http_sink_fn *sink, void *clientData,
    long *status)
{
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	return perform(c, sink, clientData, status);
}

CURLcode ws_http_post(struct ws_http_client *c, const char *const *headers,
    const void *body, size_t n, long timeout_s, struct ws_buf *resp, long *status)
{
	struct curl_slist *l = NULL, *t;

	*status = 0;
	for (; headers && *headers; headers++) {
		if (!(t = curl_slist_append(l, *headers))) {
			curl_slist_free_all(l);
			return CURLE_OUT_OF_MEMORY;
		}
		l = t;
	}
	curl_slist_free_all(c->hdrs);
	c->hdrs = l;
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, n ? (const char *)body : "");
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)n);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, timeout_s);
	return perform(c, to_buf, resp, status);
}

const char *ws_http_client_error(const struct ws_http_client *c, CURLcode cc)
{
	return c->cerr[0] ? c->cerr : curl_easy_strerror(cc);
}

int ws_http_loopback_url(const char *u)
{
	CURLU *h = curl_url();
	char *host = NULL;
	int yes = 0;

	if (h && curl_url_set(h, CURLUPART_URL, u, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		yes = strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
		    (strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") ==
		    strlen(host));
	curl_free(host);
	curl_url_cleanup(h);
	return yes;
}
