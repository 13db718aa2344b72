/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshotter's metadata store: containerd's snapshots/storage MetaStore
 * (CreateSnapshot, GetInfo, UpdateInfo, CommitActive, Remove, WalkInfo,
 * IDMap) on LMDB, in one file <dir>/metadata.db (docs/durability.md).
 *
 * Records: key → {kind, parent key, id, created, updated, labels, usage,
 * flags}. Ids come from a persistent counter: the id of a committed record
 * is never handed out again (not after Remove, not after reopening), and
 * within one process no id is handed out twice (not even after an aborted
 * transaction, nor one reserved and never used); the daemon names
 * snapshots/<id> after them.
 * Keys are opaque strings (never paths) of 1..STORE_KEY_MAX bytes.
 *
 * Concurrency: one write transaction at a time (LMDB's writer lock: a second
 * writer waits), any number of readers, each reading a consistent snapshot
 * of the store that writers never block. The env is opened with MDB_NOTLS,
 * so a read transaction may begin on one thread and end on another and a
 * thread may hold several. A write transaction holds LMDB's writer mutex: it
 * must begin and end on the same thread, and a thread holding one must not
 * begin another (it would wait for itself). A transaction object is used by
 * one thread at a time. Crash safety is LMDB's: a committed write survives a
 * crash (default sync), an uncommitted one leaves no trace.
 *
 * Errors are negative errno values: -ENOENT, -EEXIST, -EINVAL (bad argument,
 * and also the preconditions containerd reports as FailedPrecondition or
 * InvalidArgument: see each call), -EBUSY (has children), -EUCLEAN (damaged
 * record or index), -ENOSPC (map full), -EAGAIN (reader table full), -EROFS
 * (write through a read transaction), -ENOMEM, -EIO. store_txn_errmsg() says
 * more about the last failure.
 */
#ifndef SES_STORE_H
#define SES_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_DB_NAME "metadata.db"

/* containerd's limits: keys of snapshots as the API carries them, and a
 * label's key plus value (labels.Validate, maxSize = 4096). */
#define STORE_KEY_MAX	4096
#define STORE_LABEL_MAX 4096
/* Ours: all labels of one snapshot together (sum of keys and values).
 * containerd has no such cap, and CRI fills containerd.io/snapshot/cri.
 * image-layers up to 4096 bytes by itself, beside other labels, so this
 * only bounds a record; gRPC's 4 MiB message limit is above it. */
#define STORE_LABELS_TOTAL_MAX (1u << 20)

#define STORE_MAP_SIZE_DEFAULT (UINT64_C(1) << 30) /* sparse: costs nothing */

/* containerd's snapshots.Kind numbering (Info.kind on the wire) */
enum snap_kind {
	SNAP_KIND_UNKNOWN = 0,
	SNAP_KIND_VIEW = 1,
	SNAP_KIND_ACTIVE = 2,
	SNAP_KIND_COMMITTED = 3,
};

struct snap_label {
	char *key;
	char *value;
};

/*
 * As input (store_update's info, labels of create and commit) the caller
 * owns everything and fills only what the call reads. As output every string
 * and the labels array live in one allocation the info owns (mem): free with
 * snap_info_free(), never field by field.
 */
struct snap_info {
	char *key;
	char *parent; /* output: "" when the snapshot has no parent */
	enum snap_kind kind;
	uint64_t id;	    /* ≥ 1 */
	uint64_t parent_id; /* 0 when no parent */
	int64_t created_ns; /* ns since the epoch, CLOCK_REALTIME */
	int64_t updated_ns;
	uint64_t usage_size; /* opaque to the store: the daemon's */
	uint64_t usage_inodes;
	uint32_t flags;		   /* opaque to the store: the daemon's */
	struct snap_label *labels; /* output: sorted by key, unique, values non-empty */
	size_t n_labels;
	void *mem;
};

/* Frees what an output info owns and zeroes it; NULL and repeated calls are
 * fine, so it is also the cleanup: _cleanup_(snap_info_free) struct snap_info i = {}. */
void snap_info_free(struct snap_info *info);
int snap_info_dup(const struct snap_info *info, struct snap_info *ret);
const char *snap_kind_to_string(enum snap_kind kind); /* "view", "active", "committed" */

struct store;
struct store_txn;

struct store_options {
	uint64_t map_size;    /* 0: STORE_MAP_SIZE_DEFAULT */
	unsigned max_readers; /* 0: 510 concurrent read transactions */
	/*
	 * A commit syncs the data it wrote but not the page that makes it the
	 * current state (LMDB's MDB_NOMETASYNC): it is visible at once, but
	 * durable only once a later commit or store_sync() has returned. A
	 * crash may undo the last commits so made, never tear them. For a
	 * caller that acknowledges a batch of writes after the next batch's
	 * commit: one sync a batch instead of two.
	 */
	bool deferred_sync;
};

/*
 * Opens (creating if needed) <dir>/metadata.db; dir must exist. opts may be
 * NULL. On failure errbuf (may be NULL) says why. Stale reader slots left by
 * crashed processes are released here. A database written by a newer format
 * gives -EPROTONOSUPPORT. One process per database: the id guard against
 * reuse after an abort lives in this process's memory.
 */
int store_open(const char *dir, const struct store_options *opts, struct store **ret_store,
	       char *errbuf, size_t errlen);
/* Every transaction must have ended. Returns NULL. */
struct store *store_close(struct store *store);

int store_txn_begin(struct store *store, bool write, struct store_txn **ret_txn);
/*
 * A transaction nested in a write transaction, on the parent's thread: its
 * commit moves its changes into the parent (durable only when the parent
 * commits), its abort (or a failed call that poisons it) discards them and
 * leaves the parent as it was. One child at a time; the parent takes no
 * calls (-EBUSY) until its child has ended, and aborting the parent ends the
 * child too (free the child object afterwards all the same). This is what
 * lets several callers' operations share one durable commit, each failing
 * alone. -EBUSY on a read-only parent or one that has a child already.
 */
int store_txn_begin_nested(struct store_txn *parent, struct store_txn **ret_txn);
/*
 * Ends the transaction, keeping its object (free it with store_txn_free). A
 * write transaction in which some call failed after it had started writing
 * is aborted instead, and the commit returns that call's error: partial
 * changes are never committed.
 */
int store_txn_commit(struct store_txn *txn);
/* Ends the transaction discarding its changes; fine after commit or twice. */
void store_txn_abort(struct store_txn *txn);
/* Makes every commit so far durable (only needed with deferred_sync; it
 * syncs all the same otherwise): 0 or -errno. */
int store_sync(struct store *store);
/* Aborts if still open, frees; accepts NULL, returns NULL. */
struct store_txn *store_txn_free(struct store_txn *txn);
/* What went wrong last in this transaction ("" if nothing was recorded). */
const char *store_txn_errmsg(const struct store_txn *txn);

static inline void store_closep(struct store **p)
{
	if (*p)
		*p = store_close(*p);
}

static inline void store_txn_freep(struct store_txn **p)
{
	if (*p)
		*p = store_txn_free(*p);
}

/*
 * In every call below ret_info may be NULL; when given it is written only on
 * success and must then be freed with snap_info_free(). labels may be NULL:
 * as containerd stores them, a label with an empty value is no label, and of
 * duplicate keys the last wins. A label key plus value over STORE_LABEL_MAX,
 * or all of them over STORE_LABELS_TOTAL_MAX, is -EINVAL.
 */

/*
 * CreateSnapshot: kind ACTIVE or VIEW (else -EINVAL), a new id, created =
 * updated = now. parent NULL or "" for none; else -ENOENT if it does not
 * exist and -EINVAL if it is not COMMITTED (containerd: InvalidArgument).
 * -EEXIST if key exists. Checks run in containerd's order (parent first).
 */
int store_create(struct store_txn *txn, const char *key, enum snap_kind kind, const char *parent,
		 const struct snap_label *labels, size_t n_labels, struct snap_info *ret_info);

/*
 * Ids ahead of their record: store_reserve_id hands out the next id outside
 * any transaction (thread-safe; -EOVERFLOW when exhausted), so that the
 * daemon can make snapshots/<id> before the record exists, and
 * store_create_reserved creates the record with it (in any order among
 * reserved ids: the counter only grows). Its checks are store_create's,
 * plus -ESTALE when the parent's id is not below id (the parent was made
 * after the reservation): reserve again. An id reserved and never used is
 * lost, but may come again after reopening, when no record had it.
 */
int store_reserve_id(struct store *store, uint64_t *ret_id);
int store_create_reserved(struct store_txn *txn, uint64_t id, const char *key, enum snap_kind kind,
			  const char *parent, const struct snap_label *labels, size_t n_labels,
			  struct snap_info *ret_info);

int store_get(struct store_txn *txn, const char *key, struct snap_info *ret_info);
int store_get_by_id(struct store_txn *txn, uint64_t id, struct snap_info *ret_info);

/*
 * UpdateInfo: of info only key and labels are read. fieldpaths: "labels"
 * replaces all labels, "labels.<k>" sets k from info's labels or deletes it
 * when absent (or empty) there; applied in order. n == 0 replaces all
 * labels. Any other path is -EINVAL. Sets updated = now.
 */
int store_update(struct store_txn *txn, const struct snap_info *info, const char *const *fieldpaths,
		 size_t n, struct snap_info *ret_info);

/*
 * CommitActive: the ACTIVE snapshot key becomes the COMMITTED snapshot name:
 * same id, parent, usage and flags; labels replaced by these (not
 * inherited); created = updated = now. With parent (not NULL or ""), the
 * committed snapshot's parent becomes that one instead (containerd 2.2's
 * rebase: layers prepared without parent, each committed onto the one
 * below). Checks in containerd's order: -EEXIST if name exists, -ENOENT if
 * key does not, -EINVAL if key is not ACTIVE (containerd:
 * FailedPrecondition); then -ENOENT if parent does not exist, -EINVAL if it
 * is not committed.
 */
int store_commit(struct store_txn *txn, const char *key, const char *name, const char *parent,
		 const struct snap_label *labels, size_t n_labels, struct snap_info *ret_info);

/* The longest parent chain a walk follows before it calls the file damaged. */
#define STORE_CHAIN_MAX 65536

/* Remove: -ENOENT; -EBUSY if some snapshot has it as parent (containerd:
 * FailedPrecondition). ret_id and ret_kind may be NULL. */
int store_remove(struct store_txn *txn, const char *key, uint64_t *ret_id,
		 enum snap_kind *ret_kind);

/* The daemon's fields; they do not change updated (not visible in Info). */
int store_set_usage(struct store_txn *txn, const char *key, uint64_t size, uint64_t inodes);
int store_set_flags(struct store_txn *txn, const char *key, uint32_t flags);

/*
 * Walks: fn gets each record, valid only during the call (snap_info_dup to
 * keep it). fn returns 0 to go on; anything else ends the walk and is
 * returned (a positive value to stop early without an error). fn must not
 * write through the same transaction. A damaged record ends the walk with
 * -EUCLEAN.
 */
typedef int (*store_walk_fn)(const struct snap_info *info, void *ud);

/* Every record in key order (bytewise; keys longer than 448 bytes that share
 * their first 448 bytes come in an arbitrary but stable order). */
int store_walk(struct store_txn *txn, store_walk_fn fn, void *ud);
/* The snapshots whose parent is parent, in id order; -ENOENT if parent does not exist. */
int store_children(struct store_txn *txn, const char *parent, store_walk_fn fn, void *ud);
/* containerd's ParentIDs: ids of key's ancestors, nearest first (n may be 0). */
int store_parent_ids(struct store_txn *txn, const char *key, uint64_t **ret_ids, size_t *ret_n);

/*
 * Live ids (containerd's IDMap, for Cleanup and crash recovery), ascending,
 * and next: the counter as this transaction sees it. Read from the id index
 * alone, so a damaged record cannot make its directory look dead.
 * While the daemon serves, a create may be in flight in another (uncommitted)
 * write transaction, its directory made but its id not yet visible here: it
 * is ≥ next, so a Cleanup in a read transaction keeps directories with id ≥
 * next. At start-up nothing is in flight: every id not in v is garbage.
 */
struct store_ids {
	uint64_t *v;
	size_t n;
	uint64_t next;
};

int store_ids(struct store_txn *txn, struct store_ids *ret);
bool store_ids_has(const struct store_ids *ids, uint64_t id);
void store_ids_free(struct store_ids *ids); /* zeroes; safe twice */

/* Decodes one raw record value as store_get would, for tests and fuzzing:
 * 0 or -EUCLEAN (errbuf says why), never a crash. ret_info may be NULL. */
int store_record_decode(const void *buf, size_t len, struct snap_info *ret_info, char *errbuf,
			size_t errlen);

#endif
