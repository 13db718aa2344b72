/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spin-erofs-snapshotter: containerd's proxy snapshotter for VM runtimes.
 * Thin glue: flags, logging, signals, the service manager's notifications;
 * the snapshotter and the gRPC layer do the work.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "log.h"
#include "metrics.h"
#include "metrics-http.h"
#include "notify.h"
#include "rpc/rpc.h"
#include "service-diff.h"
#include "service-introspection.h"
#include "service-snapshots.h"
#include "snapshotter.h"

#define DEFAULT_ROOT "/var/lib/spin-stack/erofs-snapshotter"
#define DEFAULT_ADDRESS "/run/spin-stack/erofs-snapshotter.sock"
#define DEFAULT_CONTAINERD "/var/run/spin-stack/containerd.sock"

struct options {
	const char *root, *address, *containerd_address, *containerd_namespace, *name, *log_file;
	const char *metrics_address;
	uint64_t default_size;
	bool set_immutable, local_content;
	enum dm_verity verity;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: spin-erofs-snapshotter [flags]\n"
		"  --root DIR                  snapshotter data (default " DEFAULT_ROOT ")\n"
		"  --address PATH              unix socket to serve (default " DEFAULT_ADDRESS ")\n"
		"  --containerd-address PATH   containerd's socket (default " DEFAULT_CONTAINERD ")\n"
		"  --containerd-namespace NS   namespace for content reads (default default)\n"
		"  --snapshotter-name NAME     the proxy plugin name containerd knows us by; requests\n"
		"                              naming another snapshotter are refused (default spin-erofs)\n"
		"  --log-level LEVEL           debug, info, warn or error (default info)\n"
		"  --log-file PATH             log to PATH (appended to, and stderr of the helper programs)\n"
		"                              instead of stderr; SIGHUP reopens it (default stderr)\n"
		"  --default-size SIZE         size of a writable layer, e.g. 64M, 10G (default 64M)\n"
		"  --set-immutable[=BOOL]      set the immutable flag on committed layers (default true)\n"
		"  --local-content[=BOOL]      Apply reads a layer blob from the file in containerd's content\n"
		"                              store when it can open it (after asking containerd that the\n"
		"                              namespace holds it); false: always the Read stream (default true)\n"
		"  --dm-verity MODE            off, on: every layer.erofs and fsmeta.erofs gets a dm-verity\n"
		"                              hash tree and a .dmverity sidecar naming its root hash; mounts:\n"
		"                              the same, and their mounts carry X-containerd.dmverity= as\n"
		"                              containerd 2.3's erofs snapshotter writes them (default off)\n"
		"  --metrics-address ADDR      serve Prometheus metrics at GET /metrics over HTTP on ADDR:\n"
		"                              a unix socket path, or 127.0.0.1:PORT, [::1]:PORT,\n"
		"                              localhost:PORT (loopback only: no authentication)\n"
		"                              (default off)\n"
		"  --version                   print the version\n");
}

/* 64M, 10G, 1073741824, 512K: binary multiples */
static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 0:
		break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default:
		return -EINVAL;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

static int parse_bool(const char *s, bool *ret)
{
	if (!s || !strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes")) {
		*ret = true;
		return 0;
	}
	if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no")) {
		*ret = false;
		return 0;
	}
	return -EINVAL;
}

static void rpc_log(const char *method, int code, const char *message, uint64_t us, void *ud)
{
	char dur[32];

	metrics_observe_rpc(ud, method, code, us);
	snprintf(dur, sizeof(dur), "%" PRIu64 "us", us);
	if (code == RPC_OK)
		log_msg(LOG_DEBUG, "rpc", "method", method, "duration", dur, (const char *)NULL);
	else
		log_msg(code == RPC_INTERNAL || code == RPC_UNKNOWN ? LOG_ERROR : LOG_INFO,
			"rpc failed", "method", method, "code", rpc_status_name(code), "error",
			message ? message : "", "duration", dur, (const char *)NULL);
}

/* What a scrape samples: the snapshots by kind (a read transaction: it
 * blocks no RPC) and the file system of --root. */
struct scrape {
	struct snapshotter *sn;
	const char *root;
};

static int count_kind(const struct snap_info *info, void *ud)
{
	struct metrics_sample *s = ud;

	if (info->kind == SNAP_KIND_COMMITTED)
		s->committed++;
	else if (info->kind == SNAP_KIND_ACTIVE)
		s->active++;
	else if (info->kind == SNAP_KIND_VIEW)
		s->view++;
	return 0;
}

static void scrape_sample(struct metrics_sample *s, void *ud)
{
	const struct scrape *sc = ud;
	struct el_error err;
	struct statvfs st;

	el_error_clear(&err);
	if (sn_walk(sc->sn, count_kind, s, &err) == 0)
		s->have_snapshots = true;
	else
		log_warn("metrics: cannot count the snapshots: %s", err.msg);
	if (statvfs(sc->root, &st) == 0) {
		s->have_root = true;
		s->root_free = (uint64_t)st.f_bavail * st.f_frsize;
		s->root_used = (uint64_t)(st.f_blocks - st.f_bfree) * st.f_frsize;
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "address", required_argument, NULL, 'a' },
		{ "containerd-address", required_argument, NULL, 'c' },
		{ "containerd-namespace", required_argument, NULL, 'n' },
		{ "snapshotter-name", required_argument, NULL, 'N' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "log-file", required_argument, NULL, 'F' },
		{ "default-size", required_argument, NULL, 's' },
		{ "set-immutable", optional_argument, NULL, 'i' },
		{ "local-content", optional_argument, NULL, 'L' },
		{ "dm-verity", required_argument, NULL, 'D' },
		{ "metrics-address", required_argument, NULL, 'M' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct options o = {
		.root = DEFAULT_ROOT,
		.address = DEFAULT_ADDRESS,
		.containerd_address = DEFAULT_CONTAINERD,
		.containerd_namespace = "default",
		.name = "spin-erofs",
		.default_size = 64u << 20,
		.set_immutable = true,
		.local_content = true,
	};
	enum log_level level;
	struct el_error err;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': o.root = optarg; break;
		case 'a': o.address = optarg; break;
		case 'c': o.containerd_address = optarg; break;
		case 'n': o.containerd_namespace = optarg; break;
		case 'N': o.name = optarg; break;
		case 'l':
			if (log_parse_level(optarg, &level) < 0) {
				fprintf(stderr, "spin-erofs-snapshotter: invalid --log-level '%s'\n", optarg);
				return 2;
			}
			log_set_level(level);
			break;
		case 'F': o.log_file = optarg; break;
		case 's':
			if (parse_size(optarg, &o.default_size) < 0 || o.default_size < (16u << 20)) {
				fprintf(stderr, "spin-erofs-snapshotter: invalid --default-size '%s' (at least 16M)\n", optarg);
				return 2;
			}
			break;
		case 'i':
			if (parse_bool(optarg, &o.set_immutable) < 0) {
				fprintf(stderr, "spin-erofs-snapshotter: invalid --set-immutable '%s'\n", optarg);
				return 2;
			}
			break;
		case 'L':
			if (parse_bool(optarg, &o.local_content) < 0) {
				fprintf(stderr, "spin-erofs-snapshotter: invalid --local-content '%s'\n", optarg);
				return 2;
			}
			break;
		case 'D':
			if (!strcmp(optarg, "off")) {
				o.verity = DM_VERITY_OFF;
			} else if (!strcmp(optarg, "on")) {
				o.verity = DM_VERITY_ON;
			} else if (!strcmp(optarg, "mounts")) {
				o.verity = DM_VERITY_MOUNTS;
			} else {
				fprintf(stderr, "spin-erofs-snapshotter: invalid --dm-verity '%s' (off, on or mounts)\n", optarg);
				return 2;
			}
			break;
		case 'M':
			el_error_clear(&err);
			if (metrics_address_check(optarg, &err) < 0) {
				fprintf(stderr, "spin-erofs-snapshotter: %s\n", err.msg);
				return 2;
			}
			o.metrics_address = optarg;
			break;
		case 'V':
			printf("spin-erofs-snapshotter %s\n", EL_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "spin-erofs-snapshotter: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	if (o.log_file) {
		int lr = log_set_file(o.log_file);
		if (lr < 0) {
			fprintf(stderr, "spin-erofs-snapshotter: cannot open --log-file %s: %s\n", o.log_file,
				strerror(-lr));
			return 1;
		}
	}
	/* before any thread: it edits the environment */
	notify_init();

	/* signals are taken by sigwait below: block them before any thread starts */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* the socket first: an instance that is to be refused touches no root */
	struct rpc_server *srv = NULL;
	int r = rpc_server_new(o.address, 8, &srv);
	if (r == -EADDRINUSE) {
		log_error("another instance answers on %s: refusing to start", o.address);
		return 1;
	}
	if (r < 0) {
		log_error("cannot serve on %s: %s", o.address, strerror(-r));
		return 1;
	}

	struct sn_config cfg = { .root = o.root, .default_size = o.default_size,
				 .set_immutable = o.set_immutable, .verity = o.verity };
	struct snapshotter *sn = NULL;
	el_error_clear(&err);
	r = sn_open(&cfg, &sn, &err);
	if (r < 0) {
		log_error("cannot open the snapshotter: %s", err.msg);
		rpc_server_free(srv);
		return 1;
	}
	/* containerd's Content service, for the differ; it connects lazily,
	 * so containerd may start after us */
	struct rpc_client *content = NULL;
	r = rpc_client_new(o.containerd_address, &content);
	if (r < 0) {
		log_error("cannot make a client for %s: %s", o.containerd_address, strerror(-r));
		rpc_server_free(srv);
		sn_close(sn);
		return 1;
	}
	struct metrics *metrics = NULL;
	if (o.metrics_address && metrics_new(&metrics) < 0) {
		log_error("cannot set up the metrics: %s", strerror(ENOMEM));
		rpc_server_free(srv);
		rpc_client_free(content);
		sn_close(sn);
		return 1;
	}
	rpc_server_set_logger(srv, rpc_log, metrics);
	struct introspection *intro = NULL;
	r = service_introspection_register(srv, o.root, &intro);
	if (r < 0)
		log_error("cannot keep a UUID in %s: %s", o.root, strerror(-r));
	if (r == 0)
		r = service_snapshots_register(srv, sn, o.name);
	if (r == 0)
		r = service_diff_register(srv, content,
					  &(struct diff_options){ .default_namespace = o.containerd_namespace,
								  .set_immutable = o.set_immutable,
								  .local_content = o.local_content,
								  .verity = o.verity != DM_VERITY_OFF,
								  .metrics = metrics });
	if (r == 0)
		r = rpc_server_start(srv);
	if (r < 0)
		log_error("cannot start serving on %s: %s", o.address, strerror(-r));
	struct metrics_server *msrv = NULL;
	struct scrape scrape = { .sn = sn, .root = o.root };
	el_error_clear(&err);
	if (r == 0 && o.metrics_address) {
		r = metrics_server_start(o.metrics_address, metrics, scrape_sample, &scrape, &msrv,
					 &err);
		if (r < 0)
			log_error("cannot serve the metrics: %s", err.msg);
	}
	if (r < 0) {
		rpc_server_free(srv);
		rpc_client_free(content);
		service_diff_done();
		introspection_free(intro);
		sn_close(sn);
		metrics_free(metrics);
		return 1;
	}
	log_msg(LOG_INFO, "serving", "address", o.address, "root", o.root,
		msrv ? "metrics" : (const char *)NULL, msrv ? metrics_server_address(msrv) : NULL,
		(const char *)NULL);
	/* the socket is at its path and accepting: containerd may connect */
	r = notify_ready();
	if (r < 0)
		log_warn("cannot notify the service manager: %s", strerror(-r));

	/* SIGHUP: the only thing to re-read is the log file (logrotate) */
	int sig = 0;
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
		notify_reloading();
		r = log_reopen();
		if (r < 0)
			log_error("reload: cannot reopen --log-file %s: %s", o.log_file, strerror(-r));
		else if (r == 0)
			log_msg(LOG_INFO, "reload: log file reopened", "path", o.log_file, (const char *)NULL);
		else
			log_info("reload: nothing to re-read");
		notify_ready();
	}
	notify_stopping();
	log_msg(LOG_INFO, "shutting down", "signal", strsignal(sig), (const char *)NULL);
	rpc_server_shutdown(srv, RPC_SHUTDOWN_GRACE_MS);
	/* before the snapshotter goes: a scrape reads it */
	metrics_server_stop(msrv);
	rpc_server_free(srv);
	rpc_client_free(content);
	service_diff_done();
	introspection_free(intro);
	sn_close(sn);
	metrics_free(metrics);
	log_info("stopped");
	return 0;
}
