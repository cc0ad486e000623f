/*
 * fake_libipvs.c: a stand-in for ipvsadm's libipvs that keeps the IPVS table in a text
 * file instead of the kernel, so that ipvsadm 1.31 itself can be run beside rvsadm on the
 * same table (controlplane/tests/rvsadm_compat.rs). rvs's own code, written against
 * libipvs.h's interface; ipvsadm.c is linked against this file instead of libipvs.a.
 *
 * The table file ($FAKE_IPVS_TABLE), one record a line, fields separated by blanks:
 *
 *   timeout TCP TCPFIN UDP
 *   service PROTO ADDR PORT SCHED FLAGS TIMEOUT NETMASK  CONNS INPKTS OUTPKTS INBYTES OUTBYTES CPS INPPS OUTPPS INBPS OUTBPS
 *   dest ADDR PORT FWD WEIGHT UTHRESH LTHRESH ACTIVE INACTIVE PERSIST  (ten counters as above)  TUNTYPE TUNPORT TUNFLAGS
 *
 * PROTO is tcp|udp, FWD route|masq|tunnel|local; a dest belongs to the service above it.
 * Changes are applied to the file with the kernel's errno for each refusal (EEXIST,
 * ESRCH, ENOENT), so a later listing shows them. $FAKE_IPVS_CONN replaces
 * /proc/net/ip_vs_conn (ipvsadm.c is compiled with -Dfopen=fake_ipvs_fopen).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include "libipvs.h"

/* ipvsadm.c is built with -Dfopen=fake_ipvs_fopen (so is this file); here fopen is libc's. */
#undef fopen
extern FILE *fopen(const char *path, const char *mode);

struct ip_vs_getinfo ipvs_info;

#define MAX_SVC 64
#define MAX_DEST 64

struct fake_svc {
	ipvs_service_entry_t e;
	int ndest;
	ipvs_dest_entry_t d[MAX_DEST];
};

static struct fake_svc table[MAX_SVC];
static int nsvc;
static ipvs_timeout_t timeouts = { 900, 120, 300 };
/* Which call failed last, for ipvs_strerror's table (as libipvs keys it). */
static void *last_func;

static const char *table_path(void)
{
	const char *p = getenv("FAKE_IPVS_TABLE");
	return p ? p : "ipvs-table.txt";
}

static void read_stats(struct ip_vs_stats64 *s, char **save)
{
	__u64 *f[] = { &s->conns, &s->inpkts, &s->outpkts, &s->inbytes, &s->outbytes,
		       &s->cps, &s->inpps, &s->outpps, &s->inbps, &s->outbps };
	for (unsigned i = 0; i < 10; i++) {
		char *t = strtok_r(NULL, " \t\n", save);
		*f[i] = t ? strtoull(t, NULL, 10) : 0;
	}
}

static void write_stats(FILE *f, const struct ip_vs_stats64 *s)
{
	fprintf(f, " %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		s->conns, s->inpkts, s->outpkts, s->inbytes, s->outbytes,
		s->cps, s->inpps, s->outpps, s->inbps, s->outbps);
}

static unsigned fwd_of(const char *w)
{
	if (!strcmp(w, "masq")) return IP_VS_CONN_F_MASQ;
	if (!strcmp(w, "tunnel")) return IP_VS_CONN_F_TUNNEL;
	if (!strcmp(w, "local")) return IP_VS_CONN_F_LOCALNODE;
	return IP_VS_CONN_F_DROUTE;
}

static const char *fwd_word(unsigned flags)
{
	switch (flags & IP_VS_CONN_F_FWD_MASK) {
	case IP_VS_CONN_F_MASQ: return "masq";
	case IP_VS_CONN_F_TUNNEL: return "tunnel";
	case IP_VS_CONN_F_LOCALNODE: return "local";
	default: return "route";
	}
}

#define NEXT() strtok_r(NULL, " \t\n", &save)
#define NUM() strtoul(NEXT() ? : "0", NULL, 0)

static void load(void)
{
	FILE *f = fopen(table_path(), "r");
	char line[1024];

	nsvc = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *save, *kind = strtok_r(line, " \t\n", &save);
		if (!kind || kind[0] == '#')
			continue;
		if (!strcmp(kind, "timeout")) {
			timeouts.tcp_timeout = NUM();
			timeouts.tcp_fin_timeout = NUM();
			timeouts.udp_timeout = NUM();
		} else if (!strcmp(kind, "service") && nsvc < MAX_SVC) {
			struct fake_svc *s = &table[nsvc++];
			ipvs_service_entry_t *e = &s->e;
			char *proto = NEXT();
			memset(s, 0, sizeof(*s));
			e->af = AF_INET;
			e->protocol = proto && !strcmp(proto, "udp") ? IPPROTO_UDP : IPPROTO_TCP;
			inet_pton(AF_INET, NEXT() ? : "0.0.0.0", &e->addr.ip);
			e->__addr_v4 = e->addr.ip;
			e->port = htons(NUM());
			snprintf(e->sched_name, sizeof(e->sched_name), "%s", NEXT() ? : "wlc");
			e->flags = NUM();
			e->timeout = NUM();
			inet_pton(AF_INET, NEXT() ? : "255.255.255.255", &e->netmask);
			read_stats(&e->stats64, &save);
		} else if (!strcmp(kind, "dest") && nsvc > 0 && table[nsvc - 1].ndest < MAX_DEST) {
			struct fake_svc *s = &table[nsvc - 1];
			ipvs_dest_entry_t *d = &s->d[s->ndest++];
			memset(d, 0, sizeof(*d));
			d->af = AF_INET;
			inet_pton(AF_INET, NEXT() ? : "0.0.0.0", &d->addr.ip);
			d->__addr_v4 = d->addr.ip;
			d->port = htons(NUM());
			d->conn_flags = fwd_of(NEXT() ? : "route");
			d->weight = NUM();
			d->u_threshold = NUM();
			d->l_threshold = NUM();
			d->activeconns = NUM();
			d->inactconns = NUM();
			d->persistconns = NUM();
			read_stats(&d->stats64, &save);
			d->tun_type = NUM();
			d->tun_port = htons(NUM());
			d->tun_flags = NUM();
		}
	}
	fclose(f);
}

static int store(void)
{
	FILE *f = fopen(table_path(), "w");
	char a[INET_ADDRSTRLEN], m[INET_ADDRSTRLEN];

	if (!f)
		return -1;
	fprintf(f, "timeout %d %d %d\n", timeouts.tcp_timeout, timeouts.tcp_fin_timeout,
		timeouts.udp_timeout);
	for (int i = 0; i < nsvc; i++) {
		ipvs_service_entry_t *e = &table[i].e;
		inet_ntop(AF_INET, &e->addr.ip, a, sizeof(a));
		inet_ntop(AF_INET, &e->netmask, m, sizeof(m));
		fprintf(f, "service %s %s %u %s %u %u %s", e->protocol == IPPROTO_UDP ? "udp" : "tcp",
			a, ntohs(e->port), e->sched_name, e->flags, e->timeout, m);
		write_stats(f, &e->stats64);
		fputc('\n', f);
		for (int j = 0; j < table[i].ndest; j++) {
			ipvs_dest_entry_t *d = &table[i].d[j];
			inet_ntop(AF_INET, &d->addr.ip, a, sizeof(a));
			fprintf(f, "dest %s %u %s %d %u %u %u %u %u", a, ntohs(d->port),
				fwd_word(d->conn_flags), d->weight, d->u_threshold, d->l_threshold,
				d->activeconns, d->inactconns, d->persistconns);
			write_stats(f, &d->stats64);
			fprintf(f, " %u %u %u\n", d->tun_type, ntohs(d->tun_port), d->tun_flags);
		}
	}
	return fclose(f);
}

static int fail_with(void *func, int err)
{
	last_func = func;
	errno = err;
	return -1;
}

static struct fake_svc *find_svc(__u16 protocol, __u32 addr, __u16 port)
{
	for (int i = 0; i < nsvc; i++)
		if (table[i].e.protocol == protocol && table[i].e.addr.ip == addr &&
		    table[i].e.port == port)
			return &table[i];
	return NULL;
}

static int find_dest(struct fake_svc *s, __u32 addr, __u16 port)
{
	for (int j = 0; j < s->ndest; j++)
		if (s->d[j].addr.ip == addr && s->d[j].port == port)
			return j;
	return -1;
}

/* The kernel's schedulers (ip_vs_*.ko of Linux 6.1). */
static int known_sched(const char *name)
{
	static const char *const names[] = { "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh",
					     "sh", "sed", "nq", "fo", "ovf", "mh", NULL };
	for (int i = 0; names[i]; i++)
		if (!strcmp(name, names[i]))
			return 1;
	return 0;
}

static void copy_svc_options(ipvs_service_entry_t *e, const ipvs_service_t *svc)
{
	snprintf(e->sched_name, sizeof(e->sched_name), "%s", svc->sched_name);
	e->flags = svc->flags;
	e->timeout = svc->timeout;
	e->netmask = svc->netmask;
}

int ipvs_init(void)
{
	ipvs_info.version = IPVS_VERSION(1, 2, 1);
	ipvs_info.size = 4096;
	load();
	ipvs_info.num_services = nsvc;
	return 0;
}

int ipvs_getinfo(void) { return ipvs_init(); }
unsigned int ipvs_version(void) { return ipvs_info.version; }
void ipvs_close(void) {}

int ipvs_flush(void)
{
	nsvc = 0;
	return store();
}

int ipvs_add_service(ipvs_service_t *svc)
{
	struct fake_svc *s;

	if (find_svc(svc->protocol, svc->addr.ip, svc->port))
		return fail_with(ipvs_add_service, EEXIST);
	if (!known_sched(svc->sched_name))
		return fail_with(ipvs_add_service, ENOENT);
	if (nsvc == MAX_SVC)
		return fail_with(ipvs_add_service, ENOMEM);
	s = &table[nsvc++];
	memset(s, 0, sizeof(*s));
	s->e.af = AF_INET;
	s->e.protocol = svc->protocol;
	s->e.addr = svc->addr;
	s->e.__addr_v4 = svc->addr.ip;
	s->e.port = svc->port;
	copy_svc_options(&s->e, svc);
	return store();
}

int ipvs_update_service(ipvs_service_t *svc)
{
	struct fake_svc *s = find_svc(svc->protocol, svc->addr.ip, svc->port);

	if (!s)
		return fail_with(ipvs_update_service, ESRCH);
	if (!known_sched(svc->sched_name))
		return fail_with(ipvs_update_service, ENOENT);
	copy_svc_options(&s->e, svc);
	return store();
}

int ipvs_del_service(ipvs_service_t *svc)
{
	struct fake_svc *s = find_svc(svc->protocol, svc->addr.ip, svc->port);

	if (!s)
		return fail_with(ipvs_del_service, ESRCH);
	memmove(s, s + 1, (char *)&table[nsvc] - (char *)(s + 1));
	nsvc--;
	return store();
}

static void zero(struct fake_svc *s)
{
	memset(&s->e.stats64, 0, sizeof(s->e.stats64));
	for (int j = 0; j < s->ndest; j++)
		memset(&s->d[j].stats64, 0, sizeof(s->d[j].stats64));
}

int ipvs_zero_service(ipvs_service_t *svc)
{
	if (svc->fwmark == 0 && svc->addr.ip == 0 && svc->port == 0) {
		for (int i = 0; i < nsvc; i++)
			zero(&table[i]);
	} else {
		struct fake_svc *s = find_svc(svc->protocol, svc->addr.ip, svc->port);
		if (!s)
			return fail_with(ipvs_zero_service, ESRCH);
		zero(s);
	}
	return store();
}

static void copy_dest_options(ipvs_dest_entry_t *d, const ipvs_dest_t *dest)
{
	d->conn_flags = dest->conn_flags;
	d->weight = dest->weight;
	d->u_threshold = dest->u_threshold;
	d->l_threshold = dest->l_threshold;
	d->tun_type = dest->tun_type;
	d->tun_port = dest->tun_port;
	d->tun_flags = dest->tun_flags;
}

int ipvs_add_dest(ipvs_service_t *svc, ipvs_dest_t *dest)
{
	struct fake_svc *s = find_svc(svc->protocol, svc->addr.ip, svc->port);
	ipvs_dest_entry_t *d;

	if (!s)
		return fail_with(ipvs_add_dest, ESRCH);
	if (find_dest(s, dest->addr.ip, dest->port) >= 0)
		return fail_with(ipvs_add_dest, EEXIST);
	if (s->ndest == MAX_DEST)
		return fail_with(ipvs_add_dest, ENOMEM);
	d = &s->d[s->ndest++];
	memset(d, 0, sizeof(*d));
	d->af = AF_INET;
	d->addr = dest->addr;
	d->__addr_v4 = dest->addr.ip;
	d->port = dest->port;
	copy_dest_options(d, dest);
	return store();
}

int ipvs_update_dest(ipvs_service_t *svc, ipvs_dest_t *dest)
{
	struct fake_svc *s = find_svc(svc->protocol, svc->addr.ip, svc->port);
	int j;

	if (!s)
		return fail_with(ipvs_update_dest, ESRCH);
	if ((j = find_dest(s, dest->addr.ip, dest->port)) < 0)
		return fail_with(ipvs_update_dest, ENOENT);
	copy_dest_options(&s->d[j], dest);
	return store();
}

int ipvs_del_dest(ipvs_service_t *svc, ipvs_dest_t *dest)
{
	struct fake_svc *s = find_svc(svc->protocol, svc->addr.ip, svc->port);
	int j;

	if (!s)
		return fail_with(ipvs_del_dest, ESRCH);
	if ((j = find_dest(s, dest->addr.ip, dest->port)) < 0)
		return fail_with(ipvs_del_dest, ENOENT);
	memmove(&s->d[j], &s->d[j + 1], (s->ndest - j - 1) * sizeof(s->d[0]));
	s->ndest--;
	return store();
}

int ipvs_set_timeout(ipvs_timeout_t *to)
{
	if (to->tcp_timeout)
		timeouts.tcp_timeout = to->tcp_timeout;
	if (to->tcp_fin_timeout)
		timeouts.tcp_fin_timeout = to->tcp_fin_timeout;
	if (to->udp_timeout)
		timeouts.udp_timeout = to->udp_timeout;
	return store();
}

/* No sync daemon here, as on a director where none was started. */
int ipvs_start_daemon(ipvs_daemon_t *dm)
{
	(void)dm;
	return fail_with(ipvs_start_daemon, EINVAL);
}

int ipvs_stop_daemon(ipvs_daemon_t *dm)
{
	(void)dm;
	return fail_with(ipvs_stop_daemon, ESRCH);
}

struct ip_vs_get_services *ipvs_get_services(void)
{
	struct ip_vs_get_services *g =
		calloc(1, sizeof(*g) + nsvc * sizeof(ipvs_service_entry_t));

	g->num_services = nsvc;
	for (int i = 0; i < nsvc; i++) {
		g->entrytable[i] = table[i].e;
		g->entrytable[i].num_dests = table[i].ndest;
	}
	return g;
}

int ipvs_cmp_services(ipvs_service_entry_t *s1, ipvs_service_entry_t *s2)
{
	long r = (long)s1->fwmark - (long)s2->fwmark;
	if (!r) r = (long)s1->af - (long)s2->af;
	if (!r) r = (long)s1->protocol - (long)s2->protocol;
	if (!r) r = (long)ntohl(s1->addr.ip) - (long)ntohl(s2->addr.ip);
	if (!r) r = (long)ntohs(s1->port) - (long)ntohs(s2->port);
	return r < 0 ? -1 : r > 0;
}

void ipvs_sort_services(struct ip_vs_get_services *s, ipvs_service_cmp_t f)
{
	qsort(s->entrytable, s->num_services, sizeof(ipvs_service_entry_t),
	      (int (*)(const void *, const void *))f);
}

struct ip_vs_get_dests *ipvs_get_dests(ipvs_service_entry_t *svc)
{
	struct fake_svc *s = find_svc(svc->protocol, svc->addr.ip, svc->port);
	int n = s ? s->ndest : 0;
	struct ip_vs_get_dests *g = calloc(1, sizeof(*g) + n * sizeof(ipvs_dest_entry_t));

	if (!s) {
		free(g);
		fail_with(ipvs_get_dests, ESRCH);
		return NULL;
	}
	g->protocol = svc->protocol;
	g->addr = svc->addr;
	g->port = svc->port;
	g->af = AF_INET;
	g->num_dests = n;
	memcpy(g->entrytable, s->d, n * sizeof(ipvs_dest_entry_t));
	return g;
}

int ipvs_cmp_dests(ipvs_dest_entry_t *d1, ipvs_dest_entry_t *d2)
{
	long r = (long)ntohl(d1->addr.ip) - (long)ntohl(d2->addr.ip);
	if (!r) r = (long)ntohs(d1->port) - (long)ntohs(d2->port);
	return r < 0 ? -1 : r > 0;
}

void ipvs_sort_dests(struct ip_vs_get_dests *d, ipvs_dest_cmp_t f)
{
	qsort(d->entrytable, d->num_dests, sizeof(ipvs_dest_entry_t),
	      (int (*)(const void *, const void *))f);
}

ipvs_service_entry_t *ipvs_get_service(__u32 fwmark, __u16 af, __u16 protocol,
				       union nf_inet_addr addr, __u16 port)
{
	struct fake_svc *s = find_svc(protocol, addr.ip, port);
	ipvs_service_entry_t *e;

	(void)fwmark;
	(void)af;
	if (!s) {
		fail_with(ipvs_get_service, ESRCH);
		return NULL;
	}
	e = malloc(sizeof(*e));
	*e = s->e;
	e->num_dests = s->ndest;
	return e;
}

ipvs_timeout_t *ipvs_get_timeout(void)
{
	ipvs_timeout_t *t = malloc(sizeof(*t));
	*t = timeouts;
	return t;
}

ipvs_daemon_t *ipvs_get_daemon(void)
{
	return calloc(2, sizeof(ipvs_daemon_t));
}

/* The kernel's words for each refusal, keyed by the call that failed, as libipvs has them. */
const char *ipvs_strerror(int err)
{
	static const struct {
		void *func;
		int err;
		const char *message;
	} words[] = {
		{ ipvs_add_service, EEXIST, "Service already exists" },
		{ ipvs_add_service, ENOENT, "Scheduler or persistence engine not found" },
		{ ipvs_update_service, ESRCH, "No such service" },
		{ ipvs_update_service, ENOENT, "Scheduler or persistence engine not found" },
		{ ipvs_del_service, ESRCH, "No such service" },
		{ ipvs_zero_service, ESRCH, "No such service" },
		{ ipvs_add_dest, ESRCH, "Service not defined" },
		{ ipvs_add_dest, EEXIST, "Destination already exists" },
		{ ipvs_update_dest, ESRCH, "Service not defined" },
		{ ipvs_update_dest, ENOENT, "No such destination" },
		{ ipvs_del_dest, ESRCH, "Service not defined" },
		{ ipvs_del_dest, ENOENT, "No such destination" },
		{ ipvs_start_daemon, EEXIST, "Daemon has already run" },
		{ ipvs_stop_daemon, ESRCH, "No daemon is running" },
		{ ipvs_get_services, ESRCH, "No such service" },
		{ ipvs_get_dests, ESRCH, "No such service" },
		{ ipvs_get_service, ESRCH, "No such service" },
		{ NULL, EPERM, "Permission denied (you must be root)" },
		{ NULL, EINVAL, "Invalid operation.  Possibly wrong module version, address not unicast, ..." },
		{ NULL, ENOMEM, "Memory allocation problem" },
	};

	for (unsigned i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if ((!words[i].func || words[i].func == last_func) && words[i].err == err)
			return words[i].message;
	return strerror(err);
}

/* ipvsadm reads connections from /proc/net/ip_vs_conn; here from $FAKE_IPVS_CONN. */
FILE *fake_ipvs_fopen(const char *path, const char *mode)
{
	if (!strcmp(path, "/proc/net/ip_vs_conn") && getenv("FAKE_IPVS_CONN"))
		path = getenv("FAKE_IPVS_CONN");
	return fopen(path, mode);
}
