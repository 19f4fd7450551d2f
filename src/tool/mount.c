/*
 * mount.c - `embedkvfs mount [-f] [-d] [-o OPTIONS] IMAGE... MOUNTPOINT`:
 * serve the store held by one or more replica images as a directory with
 * one regular file per key, through FUSE (libfuse3, low-level API).
 *
 * Everything that can go wrong with the images or the mount point is
 * found before the daemon detaches: the images are opened (locked,
 * recovered, indexed) and the file system mounted first, so a mistake
 * gives one line on stderr, a non-zero exit and nothing mounted. The
 * operations themselves are in mount_ops.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "mount.h"

#include <fuse_lowlevel.h>
#include "numparse.h"
#include "window.h"

struct ekvfs fs = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .reader_gone = PTHREAD_COND_INITIALIZER,
    .all = {.gnext = &fs.all, .gprev = &fs.all},
};

void mount_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (fs.foreground) {
        fprintf(stderr, "%s: ", PROG);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    } else {
        vsyslog(LOG_ERR, fmt, ap);
    }
    va_end(ap);
}

/* SIGTERM, SIGINT and SIGHUP end the mount. libfuse's own handlers only set
 * an exit flag, and its loop can miss it (its main thread may go to sleep
 * waiting for a worker just after looking at the flag), which under load
 * left the daemon running after a signal. So the three signals are blocked
 * in every thread and one thread waits for them; on one it sets the exit
 * flag and then interrupts the loop's thread with SIGUSR2 (a handler that
 * does nothing, installed without SA_RESTART) until the loop has returned.
 * What was never closed or fsynced is still not stored (destroy). */
typedef struct sig_waiter {
    pthread_t thread, loop_thread;
    sigset_t set;
    struct fuse_session *se;
    int loop_done; /* set by the loop's thread, read atomically */
    int started;
} sig_waiter;

static void wake_handler(int sig)
{
    (void)sig; /* its only job is to interrupt a blocking call */
}

static void *sig_wait_main(void *arg)
{
    sig_waiter *w = arg;
    int sig = 0;
    do {
        if (sigwait(&w->set, &sig) != 0)
            return NULL;
        /* SIGUSR1 is sig_waiter_stop's: the loop ended by itself. */
        if (sig == SIGUSR1 && __atomic_load_n(&w->loop_done, __ATOMIC_ACQUIRE))
            return NULL;
    } while (sig == SIGUSR1);
    while (!__atomic_load_n(&w->loop_done, __ATOMIC_ACQUIRE)) {
        loop_kick(w->se, w->loop_thread);
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    return NULL;
}

static int sig_waiter_start(sig_waiter *w, struct fuse_session *se)
{
    memset(w, 0, sizeof(*w));
    w->se = se;
    w->loop_thread = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wake_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the blocking call returns EINTR */
    if (sigaction(SIGUSR2, &sa, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&w->set);
    sigaddset(&w->set, SIGTERM);
    sigaddset(&w->set, SIGINT);
    sigaddset(&w->set, SIGHUP);
    sigaddset(&w->set, SIGUSR1);
    /* Blocked here, before libfuse starts its workers: they inherit it. */
    if (pthread_sigmask(SIG_BLOCK, &w->set, NULL) != 0)
        return -1;
    if (pthread_create(&w->thread, NULL, sig_wait_main, w) != 0)
        return -1;
    w->started = 1;
    return 0;
}

/* After the loop: stop the waiter, whether a signal came or not. */
static void sig_waiter_stop(sig_waiter *w)
{
    __atomic_store_n(&w->loop_done, 1, __ATOMIC_RELEASE);
    if (!w->started)
        return;
    /* Wake it if it still waits for a signal; if it is interrupting the
     * loop, it sees loop_done and returns. (No pthread_cancel: unwinding
     * a thread out of sigwait is more than it needs.) */
    pthread_kill(w->thread, SIGUSR1);
    pthread_join(w->thread, NULL);
    w->started = 0;
}

/* The command line, as fuse_opt_parse leaves it. */
struct mount_opts {
    int foreground, singlethread, help, version;
    int ro, degraded, nosync, xattr, nocache, noheal;
    unsigned uid, gid, umask;
    int set_uid, set_gid, set_umask;
    char *umask_str; /* checked after parsing: octal 0..0777 */
    int has_fsname, has_subtype, shared;
    double timeout[3]; /* entry, attr, negative; < 0: not given */
    char *paths[EKV_MAX_REPLICAS + 1]; /* images, then the mount point */
    unsigned npaths;
    int too_many;
    int bad_window; /* a number did not parse (said why) */
};

enum {
    KEY_FOREGROUND,
    KEY_DEBUG,
    KEY_SINGLE,
    KEY_HELP,
    KEY_VERSION,
    KEY_RO,
    KEY_RW,
    KEY_ENTRY_TIMEOUT,
    KEY_ATTR_TIMEOUT,
    KEY_NEGATIVE_TIMEOUT,
    KEY_FSNAME,
    KEY_SUBTYPE,
    KEY_SHARED,
    KEY_OFFSET,
    KEY_LENGTH,
    KEY_UID,
    KEY_GID,
};

#define MOPT(t, field, v) {t, offsetof(struct mount_opts, field), v}

static const struct fuse_opt mount_opt_spec[] = {
    /* Ours: consumed here, never passed to libfuse (its own uid=, gid=
     * and umask= would force 0777 & ~umask on every file). */
    FUSE_OPT_KEY("uid=", KEY_UID),
    FUSE_OPT_KEY("gid=", KEY_GID),
    MOPT("umask=%s", umask_str, 0),
    MOPT("umask=", set_umask, 1),
    MOPT("degraded", degraded, 1),
    MOPT("nosync", nosync, 1),
    MOPT("noheal", noheal, 1),
    MOPT("xattr", xattr, 1),
    MOPT("nocache", nocache, 1),
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_KEY("rw", KEY_RW),
    FUSE_OPT_KEY("entry_timeout=", KEY_ENTRY_TIMEOUT),
    FUSE_OPT_KEY("attr_timeout=", KEY_ATTR_TIMEOUT),
    FUSE_OPT_KEY("negative_timeout=", KEY_NEGATIVE_TIMEOUT),
    /* Seen here and passed on. */
    FUSE_OPT_KEY("fsname=", KEY_FSNAME),
    FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
    FUSE_OPT_KEY("offset=", KEY_OFFSET),
    FUSE_OPT_KEY("length=", KEY_LENGTH),
    FUSE_OPT_KEY("allow_other", KEY_SHARED),
    FUSE_OPT_KEY("allow_root", KEY_SHARED),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    /* Command-line switches. */
    FUSE_OPT_KEY("-f", KEY_FOREGROUND),
    FUSE_OPT_KEY("-s", KEY_SINGLE),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_END,
};

/* Returns 1 to pass an argument on to libfuse, 0 to consume it. */
static int mount_opt_proc(void *data, const char *arg, int key,
                          struct fuse_args *outargs)
{
    struct mount_opts *o = data;
    (void)outargs;
    switch (key) {
    case FUSE_OPT_KEY_NONOPT:
        if (o->npaths < EKV_MAX_REPLICAS + 1)
            o->paths[o->npaths++] = (char *)arg;
        else
            o->too_many = 1;
        return 0;
    case KEY_FOREGROUND:
        o->foreground = 1;
        return 0;
    case KEY_DEBUG:
        o->foreground = 1;
        return 1;
    case KEY_SINGLE:
        o->singlethread = 1;
        return 0;
    case KEY_HELP:
        o->help = 1;
        return 0;
    case KEY_VERSION:
        o->version = 1;
        return 0;
    case KEY_RO:
        o->ro = 1;
        return 1;
    case KEY_RW:
        o->ro = 0;
        return 1;
    case KEY_ENTRY_TIMEOUT:
    case KEY_ATTR_TIMEOUT:
    case KEY_NEGATIVE_TIMEOUT: {
        /* Seconds, fractions allowed: the one option format that is not
         * an integer, so not numparse's. */
        const char *v = strchr(arg, '=') + 1;
        char *end;
        errno = 0;
        double t = strtod(v, &end);
        if (errno || end == v || *end || !(t >= 0 && t <= 1e9)) {
            fprintf(stderr, "%s mount: -o %s: not a number of seconds\n",
                    PROG, arg);
            o->bad_window = 1;
        } else {
            o->timeout[key - KEY_ENTRY_TIMEOUT] = t;
        }
        return 0;
    }
    case KEY_FSNAME:
        o->has_fsname = 1;
        return 1;
    case KEY_SUBTYPE:
        o->has_subtype = 1;
        return 1;
    case KEY_SHARED:
        o->shared = 1;
        return 1;
    case KEY_UID:
    case KEY_GID: {
        /* Numbers go through the tool's one parser (numparse.h). */
        uint64_t v = 0;
        int rc = parse_number(arg + 4, 0xfffffffeu, &v);
        if (rc) {
            fprintf(stderr, "%s mount: -o %s: %s\n", PROG, arg,
                    number_error(rc));
            o->bad_window = 1;
        } else if (key == KEY_UID) {
            o->uid = (unsigned)v;
            o->set_uid = 1;
        } else {
            o->gid = (unsigned)v;
            o->set_gid = 1;
        }
        return 0;
    }
    case KEY_OFFSET:
    case KEY_LENGTH:
        /* The partition window (window.h): ours, never libfuse's. */
        if (window_set("mount", key == KEY_OFFSET ? "offset" : "length",
                       strchr(arg, '=') + 1) != 0)
            o->bad_window = 1;
        return 0;
    default:
        return 1; /* a FUSE or mount option: libfuse judges it */
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s mount [-f] [-d] [-s] [-o OPTIONS] IMAGE... MOUNTPOINT\n"
            "\n"
            "Serve the embedkv store held by IMAGE (and its replicas) as a\n"
            "directory with one file per key. Detaches unless -f or -d.\n"
            "Unmount with 'fusermount3 -u MOUNTPOINT'.\n"
            "\n"
            "  -f                 stay in the foreground\n"
            "  -d                 debug output (implies -f)\n"
            "  -s                 single-threaded\n"
            "  -o ro              read-only: nothing is written to the images\n"
            "  -o uid=N,gid=N     owner of the files (default: you)\n"
            "  -o umask=M         files are 0644 & ~M, the directory 0755 & ~M\n"
            "  -o degraded        serve even if some replicas are unusable\n"
            "  -o nosync          no fdatasync: faster, not crash-safe\n"
            "  -o noheal          do not reconcile diverged replicas at mount\n"
            "  -o xattr           read-only attributes user.embedkv.*\n"
            "  -o offset=N,length=N  the store is bytes [N, N+length) of\n"
            "                     each image (length: from its header);\n"
            "                     N:N:... gives one value per image\n"
            "  -o nocache         no caching of names, attributes, listings\n"
            "                     or read-only files\n"
            "  -o entry_timeout=S,attr_timeout=S,negative_timeout=S\n"
            "                     seconds the kernel keeps names, attributes\n"
            "                     and missing names (default 30)\n"
            "  -o OPT             other FUSE options (allow_other, ...)\n"
            "\n"
            "See embedkvfs(1).\n",
            PROG);
}

/* An image we may not write makes the whole mount read-only, as mount(8)
 * does for a write-protected device. Missing images are left to
 * images_open, which says so. */
static int images_writable(char **paths, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (access(paths[i], W_OK) != 0 && errno != ENOENT) {
            fprintf(stderr,
                    "%s: warning: %s is not writable: mounting read-only\n",
                    PROG, paths[i]);
            return 0;
        }
    return 1;
}

static int check_mountpoint(const char *path, char *real)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: %s: mount point: %s\n", PROG, path,
                strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s: mount point is not a directory\n", PROG,
                path);
        return -1;
    }
    /* The daemon changes to / when it detaches. */
    if (!realpath(path, real)) {
        fprintf(stderr, "%s: %s: %s\n", PROG, path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Options we add to what the user gave. */
static int add_options(struct fuse_args *args, const struct mount_opts *o,
                       const char *image)
{
    char abs[PATH_MAX], opt[PATH_MAX + 16];
    /* Once other users can reach the mount, the kernel must check modes
     * and owners. Without allow_other/allow_root it lets nobody but the
     * mounting user in anyway, and the check would cost a round trip for
     * the directory's attributes after every create and unlink. */
    if (o->shared && fuse_opt_add_arg(args, "-odefault_permissions") != 0)
        return -1;
    if (o->ro && fuse_opt_add_arg(args, "-oro") != 0)
        return -1;
    if (!o->has_subtype &&
        fuse_opt_add_arg(args, "-osubtype=" PROG) != 0)
        return -1;
    if (!o->has_fsname) {
        /* df and mount show the first image. */
        const char *name = realpath(image, abs) ? abs : image;
        char *esc = NULL;
        if (fuse_opt_add_opt_escaped(&esc, name) != 0)
            return -1;
        snprintf(opt, sizeof(opt), "-ofsname=%s", esc);
        free(esc);
        if (fuse_opt_add_arg(args, opt) != 0)
            return -1;
    }
    return 0;
}

/*
 * How long the kernel may keep what it learnt. The daemon is the only
 * writer of its images and every change passes through the kernel, which
 * updates its own caches, so names and attributes are kept for long.
 * -o nocache makes every timeout 0; timeouts given stay as given.
 */
static void set_timeouts(const struct mount_opts *o)
{
    double def = o->nocache ? 0.0 : 30.0;
    fs.entry_timeout = o->timeout[0] >= 0 ? o->timeout[0] : def;
    fs.attr_timeout = o->timeout[1] >= 0 ? o->timeout[1] : def;
    fs.negative_timeout = o->timeout[2] >= 0 ? o->timeout[2] : def;
    /* Single-threaded, invalidate() cannot run (see mount_ops.c): keep
     * the staleness it would have prevented short. */
    if (o->singlethread && !o->nocache && o->timeout[1] < 0)
        fs.attr_timeout = 1.0;
}

static void warn_degraded(void)
{
    unsigned active = 0;
    for (unsigned i = 0; i < fs.im.n; i++) {
        ekv_replica_report r;
        if (ekv_replica_report_get(fs.store, i, &r) == 0 && r.status == 0)
            active++;
    }
    if (active < fs.im.n)
        fprintf(stderr,
                "%s: warning: serving %u of %u replicas (degraded): "
                "changes do not reach the others; 'embedkvfs repair' "
                "rebuilds them\n",
                PROG, active, fs.im.n);
}

int cmd_mount(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct mount_opts o;
    char mnt[PATH_MAX];
    struct fuse_session *se = NULL;
    int rc = EXIT_ERR;

    memset(&o, 0, sizeof(o));
    o.timeout[0] = o.timeout[1] = o.timeout[2] = -1;
    if (fuse_opt_parse(&args, &o, mount_opt_spec, mount_opt_proc) != 0) {
        /* libfuse said which option, on one line. */
        fuse_opt_free_args(&args);
        return EXIT_USAGE;
    }
    if (o.bad_window) {
        fuse_opt_free_args(&args);
        return EXIT_USAGE;
    }
    if (o.umask_str) {
        char *end;
        errno = 0;
        unsigned long m = strtoul(o.umask_str, &end, 8);
        if (errno || end == o.umask_str || *end || o.umask_str[0] == '-' ||
            m > 0777) {
            fprintf(stderr,
                    "%s mount: -o umask=%s: not an octal mask 0..0777 (see "
                    "'%s mount --help')\n",
                    PROG, o.umask_str, PROG);
            free(o.umask_str);
            fuse_opt_free_args(&args);
            return EXIT_USAGE;
        }
        o.umask = (unsigned)m;
        free(o.umask_str);
        o.umask_str = NULL;
    }
    if (o.help) {
        usage(stdout);
        printf("\nFUSE options:\n");
        fflush(stdout);
        fuse_lowlevel_help();
        fuse_opt_free_args(&args);
        return EXIT_OK;
    }
    if (o.version) {
        printf("%s %s (libembedkv %s, libfuse %d)\n", PROG,
               EKV_LIB_VERSION_STRING, EKV_LIB_VERSION_STRING,
               fuse_version());
        fuse_opt_free_args(&args);
        return EXIT_OK;
    }
    if (o.npaths < 2 || o.too_many) {
        if (o.too_many)
            fprintf(stderr, "%s: at most %u images\n", PROG,
                    EKV_MAX_REPLICAS);
        usage(stderr);
        fuse_opt_free_args(&args);
        return EXIT_USAGE;
    }
    unsigned nimg = o.npaths - 1;
    if (check_mountpoint(o.paths[nimg], mnt) != 0)
        goto out_args;
    if (!o.ro && !images_writable(o.paths, nimg))
        o.ro = 1;
    if (add_options(&args, &o, o.paths[0]) != 0) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        goto out_args;
    }

    /* libfuse checks the FUSE options before any image is touched. */
    se = fuse_session_new(&args, &ekvfs_ops, sizeof(ekvfs_ops), NULL);
    if (!se) {
        rc = EXIT_USAGE;
        goto out_args;
    }

    unsigned flags = (o.ro ? IMG_RDONLY : 0) |
                     (o.degraded ? IMG_DEGRADED : 0) |
                     (o.nosync ? IMG_NOSYNC : 0) |
                     (o.noheal ? IMG_NOHEAL : 0);
    int err = images_open(&fs.im, o.paths, nimg, flags);
    if (err) {
        rc = exit_code_for_open(err); /* images_open said why */
        goto out_fuse;
    }
    fs.store = fs.im.store;
    if (!o.ro)
        devsync_install(fs.im.devs, fs.im.n);
    if (o.degraded)
        warn_degraded();
    ekv_stats st;
    ekv_stats_get(fs.store, &st);
    fs.block_size = st.block_size;
    fs.block_count = st.block_count;
    fs.max_key = st.max_key_size;
    fs.rdonly = o.ro;
    fs.uid = o.set_uid ? (uid_t)o.uid : getuid();
    fs.gid = o.set_gid ? (gid_t)o.gid : getgid();
    fs.umask = o.set_umask ? (mode_t)(o.umask & 0777) : 0;
    fs.foreground = o.foreground;
    fs.multithreaded = !o.singlethread;
    fs.xattr = o.xattr;
    fs.cache = !o.nocache;
    set_timeouts(&o);
    clock_gettime(CLOCK_REALTIME, &fs.mount_time);
    fs.root_mtime = fs.root_ctime = fs.mount_time;

    if (fuse_session_mount(se, mnt) != 0)
        goto out_images; /* libfuse said why, on one line */
    if (fuse_daemonize(o.foreground) != 0) {
        fuse_session_unmount(se);
        goto out_images;
    }
    if (!o.foreground)
        openlog(PROG, LOG_PID, LOG_DAEMON);
    /* SIGTERM, SIGINT and SIGHUP end the loop (sig_waiter above). */
    sig_waiter sw;
    if (sig_waiter_start(&sw, se) != 0) {
        mount_log("cannot set up signal handling: %s", strerror(errno));
        fuse_session_unmount(se);
        goto out_images;
    }
    fs.se = se;
    if (o.singlethread) {
        err = fuse_session_loop(se);
    } else {
        err = loop_run(se);
    }
    sig_waiter_stop(&sw);
    fuse_session_unmount(se);
    rc = err < 0 ? EXIT_ERR : EXIT_OK;

out_images:
    /* fuse_session_destroy runs our destroy callback, which names what
     * open files still held unstored; only then may the store close. */
    fs.se = NULL;
    fuse_session_destroy(se);
    se = NULL;
    mount_teardown();
    err = devsync_now();
    if (err) {
        mount_log("flushing the images at unmount: %s", ekv_strerror(err));
        rc = EXIT_IO;
    }
    images_close(&fs.im);
    fs.store = NULL;
out_fuse:
    if (se)
        fuse_session_destroy(se);
out_args:
    fuse_opt_free_args(&args);
    return rc;
}
