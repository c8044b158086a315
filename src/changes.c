/*-------------------------------------------------------------------------
 *
 * changes.c
 *	  The per-customer change protocol: a change of one customer's settings
 *	  (budgets, markup, blocked, periods) or its deletion waits only for the
 *	  transactions writing logs of that customer, and holds up only new
 *	  writers of that customer.
 *
 * A writer "covers" every customer it writes logs of, from before it reads
 * that customer's settings until its transaction ends:
 *
 *	- the first CHANGES_LOCKED_MAX customers of a transaction with a
 *	  heavyweight lock keyed by the customer (an advisory-type lock tag:
 *	  database, 64-bit hash of the identifier), ShareLock, owned by the
 *	  top-level transaction;
 *	- further customers (a bulk load naming thousands, which would fill the
 *	  lock table) with bits in a Bloom filter of a shared "cover slot" the
 *	  transaction holds (CHANGES_SLOTS of them, CHANGES_SLOT_BITS bits each).
 *	  With no slot free, the transaction takes ShareLock on one tag that
 *	  stands for every customer.
 *
 * A change of customer X (changes_begin):
 *
 *	1. takes ExclusiveLock on X's tag: waits for the transactions holding it
 *	   (they write X) and queues new writers of X behind it; and
 *	   RowExclusiveLock on the every-customer tag (waits for writers
 *	   without a slot only);
 *	2. registers (X, its xid) in the shared table of changes in progress and
 *	   advances the shared generation;
 *	3. waits for every other transaction whose slot's filter holds X,
 *	   except one that is itself waiting for this change (below).
 *
 * At the end of the changing transaction its entries leave the table and
 * the generation advances again.  A writer that covers X for the first time
 * in its transaction looks, after covering it, for a change of X in
 * progress (a memory barrier between the two, and between the change's
 * registration and its reading of the filters: one of the two sees the
 * other) and waits for it, recording in its slot that it does, so that the
 * change does not wait for it in turn: it has written nothing of X yet.  A
 * writer of an X it covered before does not look: a change that began since
 * waits for it.  Before reading settings the writer compares the
 * generation with the one it last saw and, when it moved, drops its whole
 * customer cache.
 *
 * So after a change of X commits, every insert of X reads the new settings
 * (the writer either waited for the change, or the change waited for the
 * writer's transaction to end), and when the change rebuilds X's budget
 * counters or deletes X, every log of X written under the old settings has
 * committed or rolled back.  Writers of other customers wait for nothing
 * (a Bloom false positive can make a change wait for a bulk load that does
 * not hold X: about 3 in 10,000 with 70,000 customers in the load).
 *
 * No wait of this protocol closes a cycle by itself: a writer waits for a
 * change only for a customer it has not written, and a change skips such a
 * writer; a change's wait for a slot becomes a lock wait after
 * deadlock_timeout, so a cycle through other locks is detected.
 *
 * Without shared_preload_libraries there is no shared state, and changes
 * fall back to the global protocol (customers_changing: a lock on all of
 * analytics.logs);
 * so does a transaction's change beyond its CHANGES_PER_XACT-th customer
 * (an UPDATE of many customers), or when the shared table is full.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "changes.h"

/* Customers a transaction covers with heavyweight locks before a slot. */
#define CHANGES_LOCKED_MAX		16
/* Shared cover slots, and the bits of each slot's Bloom filter. */
#define CHANGES_SLOTS			8
#define CHANGES_SLOT_BITS		(1 << 21)
#define CHANGES_SLOT_WORDS		(CHANGES_SLOT_BITS / 64)
/*
 * Changes in progress at once, and per transaction; beyond either a change
 * falls back to the global protocol (customers_changing).
 */
#define CHANGES_IN_PROGRESS_MAX	64
#define CHANGES_PER_XACT		8

/* field4 of the advisory-type lock tags (1 and 2 are pg_advisory_lock's). */
#define CHANGES_TAG_CUSTOMER	0x4143
#define CHANGES_TAG_EVERY		0x4145

typedef struct ChangeInProgress
{
	uint64		key;			/* hash of the customer identifier */
	TransactionId xid;			/* the changing transaction; invalid: free */
} ChangeInProgress;

typedef struct CoverSlot
{
	bool		used;
	VirtualTransactionId vxid;	/* owner, while it runs */
	TransactionId prepared;		/* owner after PREPARE TRANSACTION */
	volatile TransactionId waiting_for; /* change the owner waits for ... */
	volatile uint64 waiting_key;	/* ... and of which customer */
	uint64		bits[CHANGES_SLOT_WORDS];
} CoverSlot;

typedef struct ChangesShared
{
	pg_atomic_uint64 generation;
	pg_atomic_uint32 in_progress_count; /* valid entries of in_progress[] */
	LWLock	   *lock;			/* in_progress[] and slot ownership */
	ChangeInProgress in_progress[CHANGES_IN_PROGRESS_MAX];
	CoverSlot	slots[CHANGES_SLOTS];
} ChangesShared;

static ChangesShared *changes_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This backend's state for its current transaction. */
static uint64 locked_keys[CHANGES_LOCKED_MAX];	/* covered with locks */
static int	covered_locked = 0;
static HTAB *covered = NULL;	/* covered in the filter (or every-customer
								 * tag), in TopTransactionContext */
static int	my_slot = -1;		/* cover slot held, or -1 */
static bool covered_every = false;	/* no slot was free: every-customer tag */
static TransactionId changing = InvalidTransactionId;	/* registered changes'
														 * xid, to remove at
														 * the end */
static uint64 seen_generation = 0;

/* Registered by the holder of the settings cache: changes_set_callbacks. */
static ChangesCallback changes_forget_settings = NULL;
static ChangesCallback changes_change_all = NULL;

static void
changes_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ChangesShared)));
	RequestNamedLWLockTranche("analytics customer changes", 1);
}

static void
changes_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	changes_shared = ShmemInitStruct("analytics customer changes",
									 sizeof(ChangesShared), &found);
	if (!found)
	{
		memset(changes_shared, 0, sizeof(ChangesShared));
		pg_atomic_init_u64(&changes_shared->generation, 1);
		pg_atomic_init_u32(&changes_shared->in_progress_count, 0);
		changes_shared->lock = &(GetNamedLWLockTranche("analytics customer changes"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * changes_key
 *		The 64-bit hash that stands for a customer identifier of this
 *		database.
 */
static uint64
changes_key(const char *ident)
{
	/* Seeded with the database: the shared state serves every database. */
	return hash_bytes_extended((const unsigned char *) ident, strlen(ident),
							   (uint64) MyDatabaseId);
}

static void
changes_tag(LOCKTAG *tag, uint64 key, uint16 kind)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (key >> 32),
						 (uint32) key, kind);
}

/* The four bits of a key in a slot's filter. */
static inline uint32
changes_bit(uint64 key, int i)
{
	uint64		h = key * UINT64CONST(0x9E3779B97F4A7C15) + (uint64) i * UINT64CONST(0xC2B2AE3D27D4EB4F);

	return (uint32) ((h ^ (h >> 29)) & (CHANGES_SLOT_BITS - 1));
}

static bool
changes_slot_holds(CoverSlot *slot, uint64 key)
{
	int			i;

	for (i = 0; i < 4; i++)
	{
		uint32		b = changes_bit(key, i);

		if ((slot->bits[b / 64] & (UINT64CONST(1) << (b % 64))) == 0)
			return false;
	}
	return true;
}

/*
 * changes_lock_for_transaction
 *		Acquire a lock owned by the top-level transaction, so that rolling
 *		back to a savepoint does not release it while the transaction may
 *		still hold logs written before the savepoint.
 */
static void
changes_lock_for_transaction(LOCKTAG *tag, LOCKMODE mode)
{
	ResourceOwner save = CurrentResourceOwner;

	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		(void) LockAcquire(tag, mode, false, false);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save;
	}
	PG_END_TRY();
}

/*
 * changes_take_slot
 *		Take a free cover slot for this transaction (clearing its filter),
 *		or, with none free, ShareLock on the every-customer tag.  Slots of
 *		prepared transactions that have ended are freed on the way.
 */
static void
changes_take_slot(void)
{
	int			i;
	VirtualTransactionId vxid;

	GET_VXID_FROM_PGPROC(vxid, *MyProc);
	LWLockAcquire(changes_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < CHANGES_SLOTS; i++)
	{
		CoverSlot  *slot = &changes_shared->slots[i];

		if (slot->used && TransactionIdIsValid(slot->prepared) &&
			!TransactionIdIsInProgress(slot->prepared))
			slot->used = false;
		if (!slot->used)
		{
			/* Cleared before it is published (256 kB, once per bulk load). */
			memset(slot->bits, 0, sizeof(slot->bits));
			slot->vxid = vxid;
			slot->prepared = InvalidTransactionId;
			slot->waiting_for = InvalidTransactionId;
			slot->waiting_key = 0;
			pg_write_barrier();
			slot->used = true;
			my_slot = i;
			break;
		}
	}
	LWLockRelease(changes_shared->lock);
	if (my_slot < 0)
	{
		LOCKTAG		tag;

		changes_tag(&tag, 0, CHANGES_TAG_EVERY);
		changes_lock_for_transaction(&tag, ShareLock);
		covered_every = true;
	}
}

/*
 * changes_find_in_progress
 *		The transaction changing the customer with this key now, other than
 *		ours, or InvalidTransactionId; *any says whether an entry was found
 *		at all (one whose transaction has just ended still means that the
 *		customer's settings changed).
 */
static TransactionId
changes_find_in_progress(uint64 key, bool *any)
{
	TransactionId mine = GetTopTransactionIdIfAny();
	TransactionId found = InvalidTransactionId;
	int			i;

	LWLockAcquire(changes_shared->lock, LW_SHARED);
	for (i = 0; i < CHANGES_IN_PROGRESS_MAX; i++)
	{
		ChangeInProgress *c = &changes_shared->in_progress[i];

		if (TransactionIdIsValid(c->xid) && c->key == key &&
			!TransactionIdEquals(c->xid, mine))
		{
			found = c->xid;
			break;
		}
	}
	LWLockRelease(changes_shared->lock);
	*any = TransactionIdIsValid(found);
	if (TransactionIdIsValid(found) && !TransactionIdIsInProgress(found))
		return InvalidTransactionId;	/* ended: committing now, or prepared */
	return found;
}

/*
 * changes_per_customer
 *		Whether changes use this protocol (the library was preloaded), or
 *		fall back to locking all of analytics.logs.
 */
bool
changes_per_customer(void)
{
	return changes_shared != NULL;
}

/*
 * changes_cover
 *		Called by customers_settings() before it reads a customer's settings
 *		(from its cache or the table).  Covers the customer for this
 *		transaction (see the file header), then, when the generation moved,
 *		drops the session's customer cache and waits for a change of this
 *		customer in progress.  Inside a transaction.
 */
void
changes_cover(const char *ident)
{
	uint64		key;
	bool		found;
	uint64		generation;
	int			i;

	if (changes_shared == NULL)
		return;
	key = changes_key(ident);

	/* Covered already in this transaction?  The locked ones first. */
	found = false;
	for (i = 0; i < covered_locked && !found; i++)
		found = (locked_keys[i] == key);
	if (!found && covered != NULL)
		(void) hash_search(covered, &key, HASH_FIND, &found);

	/*
	 * Cover it.  The key is recorded as covered only once the cover is in
	 * place and no change of it is in progress, so an error on the way (a
	 * lock timeout, a cancel) caught by a savepoint leaves it uncovered, and
	 * the next insert of it goes the whole way again.
	 */
	if (!found)
	{
		bool		locked = covered_locked < CHANGES_LOCKED_MAX;

		if (locked)
		{
			LOCKTAG		tag;

			changes_tag(&tag, key, CHANGES_TAG_CUSTOMER);
			changes_lock_for_transaction(&tag, ShareLock);
		}
		else
		{
			if (my_slot < 0 && !covered_every)
				changes_take_slot();
			if (my_slot >= 0)
			{
				CoverSlot  *slot = &changes_shared->slots[my_slot];

				for (i = 0; i < 4; i++)
				{
					uint32		b = changes_bit(key, i);

					slot->bits[b / 64] |= UINT64CONST(1) << (b % 64);
				}
			}
		}

		/*
		 * A change of it may be in progress, begun before the cover: wait
		 * for it (this transaction has written none of the customer's logs,
		 * and the change, seeing that in the slot, does not wait for it in
		 * turn).  A customer covered before needs no look: a change that
		 * began since waits for this transaction instead.  The cover is
		 * visible before the count of changes is read.
		 */
		pg_memory_barrier();
		while (pg_atomic_read_u32(&changes_shared->in_progress_count) > 0)
		{
			bool		any;
			TransactionId changer = changes_find_in_progress(key, &any);

			if (any)
				changes_forget_settings();
			if (!TransactionIdIsValid(changer))
				break;
			if (my_slot >= 0)
			{
				changes_shared->slots[my_slot].waiting_key = key;
				pg_write_barrier();
				changes_shared->slots[my_slot].waiting_for = changer;
				pg_memory_barrier();
			}
			PG_TRY();
			{
				XactLockTableWait(changer, NULL, NULL, XLTW_None);
			}
			PG_FINALLY();
			{
				if (my_slot >= 0)
					changes_shared->slots[my_slot].waiting_for = InvalidTransactionId;
			}
			PG_END_TRY();
			changes_forget_settings();
		}

		if (locked)
			locked_keys[covered_locked++] = key;
		else
		{
			if (covered == NULL)
			{
				HASHCTL		ctl;

				ctl.keysize = sizeof(uint64);
				ctl.entrysize = sizeof(uint64);
				ctl.hcxt = TopTransactionContext;
				covered = hash_create("analytics covered customers", 1024, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
			}
			(void) hash_search(covered, &key, HASH_ENTER, NULL);
		}
	}

	/* Any change that ended since the last look: read settings afresh. */
	pg_read_barrier();
	generation = pg_atomic_read_u64(&changes_shared->generation);
	if (generation != seen_generation)
	{
		seen_generation = generation;
		changes_forget_settings();
	}
}

/*
 * changes_wait_for_slot
 *		Wait until the owner of a slot that may hold the changed customer
 *		has ended, unless it waits for this change of this customer (then it
 *		has not written the customer yet).  Polls briefly, then, after deadlock_timeout,
 *		waits on the owner's lock, so a real deadlock is detected.
 */
static void
changes_wait_for_slot(int i, TransactionId mine, uint64 key)
{
	CoverSlot  *slot = &changes_shared->slots[i];
	TimestampTz start = GetCurrentTimestamp();

	for (;;)
	{
		bool		used;
		VirtualTransactionId vxid;
		TransactionId prepared;

		LWLockAcquire(changes_shared->lock, LW_EXCLUSIVE);
		used = slot->used;
		vxid = slot->vxid;
		prepared = slot->prepared;
		LWLockRelease(changes_shared->lock);

		if (!used)
			return;
		if (TransactionIdIsValid(prepared))
		{
			XactLockTableWait(prepared, NULL, NULL, XLTW_None);
			return;
		}
		/* Its owner waits for this change, for this very customer. */
		if (TransactionIdEquals(slot->waiting_for, mine) && slot->waiting_key == key)
		{
			pg_read_barrier();
			if (TransactionIdEquals(slot->waiting_for, mine))
				return;
		}
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), DeadlockTimeout))
		{
			(void) VirtualXactLock(vxid, true);
			return;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		/* A new owner of the slot is another transaction: done. */
		LWLockAcquire(changes_shared->lock, LW_EXCLUSIVE);
		used = slot->used && VirtualTransactionIdEquals(slot->vxid, vxid);
		LWLockRelease(changes_shared->lock);
		if (!used)
			return;
	}
}

/*
 * changes_register
 *		Whether this transaction's change of the customer with this key can
 *		be in the table of changes in progress: it is there already, or the
 *		transaction has fewer than CHANGES_PER_XACT entries and one is free.
 *		With insert, also put it there.  Entries of prepared changes that
 *		have ended since are freed on the way.
 */
static bool
changes_register(uint64 key, TransactionId mine, bool insert)
{
	int			i;
	int			mine_count = 0;
	int			free_entry = -1;
	bool		registered = false;

	LWLockAcquire(changes_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < CHANGES_IN_PROGRESS_MAX; i++)
	{
		ChangeInProgress *c = &changes_shared->in_progress[i];

		if (TransactionIdEquals(c->xid, mine))
		{
			mine_count++;
			registered |= (c->key == key);
		}
		else if (TransactionIdIsValid(c->xid) &&
				 !TransactionIdIsInProgress(c->xid))
		{
			c->xid = InvalidTransactionId;
			pg_atomic_fetch_sub_u32(&changes_shared->in_progress_count, 1);
		}
		if (!TransactionIdIsValid(c->xid) && free_entry < 0)
			free_entry = i;
	}
	if (!registered && free_entry >= 0 && mine_count < CHANGES_PER_XACT)
	{
		if (insert)
		{
			changes_shared->in_progress[free_entry].key = key;
			changes_shared->in_progress[free_entry].xid = mine;
			pg_atomic_fetch_add_u32(&changes_shared->in_progress_count, 1);
		}
		registered = true;
	}
	LWLockRelease(changes_shared->lock);
	return registered;
}

/*
 * changes_begin
 *		Called before this transaction changes the settings of the customer
 *		ident or deletes it.  Waits for the transactions writing its logs
 *		and holds off new ones until this transaction ends (see the file
 *		header); without shared memory, falls back to the global protocol
 *		(the change_all callback).  The session's own customer cache is
 *		dropped.
 */
void
changes_begin(const char *ident)
{
	uint64		key;
	LOCKTAG		tag;
	TransactionId mine;
	int			i;

	if (changes_shared == NULL)
	{
		changes_change_all();
		return;
	}
	key = changes_key(ident);
	mine = GetTopTransactionId();

	/*
	 * Decide on the fallback before taking any lock of this protocol: a
	 * change that held the customer's tag and then waited for all of
	 * analytics.logs would deadlock with that customer's writers.  (The
	 * table can still fill up meanwhile; then the fallback below is taken
	 * with the tag held, a rare case the deadlock detector resolves.)
	 */
	if (!changes_register(key, mine, false))
	{
		changes_change_all();
		return;
	}

	changes_tag(&tag, key, CHANGES_TAG_CUSTOMER);
	changes_lock_for_transaction(&tag, ExclusiveLock);
	changes_tag(&tag, 0, CHANGES_TAG_EVERY);
	changes_lock_for_transaction(&tag, RowExclusiveLock);

	/*
	 * Register, unless this transaction already changes CHANGES_PER_XACT
	 * customers (an UPDATE of many customers) or the table is full: then
	 * fall back to the global protocol, whose lock waits are visible to the
	 * deadlock detector (waiting here for a free entry could wait for a
	 * transaction that waits for this one).
	 */
	if (!changes_register(key, mine, true))
	{
		changes_change_all();
		return;
	}
	changing = mine;
	pg_atomic_fetch_add_u64(&changes_shared->generation, 1);
	/* The registration is visible before the filters are read. */
	pg_memory_barrier();

	for (i = 0; i < CHANGES_SLOTS; i++)
	{
		CoverSlot  *slot = &changes_shared->slots[i];

		if (i == my_slot || !slot->used || !changes_slot_holds(slot, key))
			continue;
		changes_wait_for_slot(i, mine, key);
	}
	changes_forget_settings();
}

/*
 * changes_xact_end
 *		End of this backend's transaction (commit, abort or prepare):
 *		remove its changes in progress and advance the generation, and give
 *		its cover slot back (after PREPARE, the slot stays with the prepared
 *		transaction until it ends).
 */
static void
changes_xact_end(bool prepare)
{
	if (changes_shared == NULL)
		return;
	if (my_slot >= 0)
	{
		CoverSlot  *slot = &changes_shared->slots[my_slot];

		LWLockAcquire(changes_shared->lock, LW_EXCLUSIVE);
		if (prepare && TransactionIdIsValid(GetTopTransactionIdIfAny()))
			slot->prepared = GetTopTransactionIdIfAny();
		else
			slot->used = false;
		LWLockRelease(changes_shared->lock);
	}
	if (TransactionIdIsValid(changing))
	{
		TransactionId mine = changing;
		int			i;

		/* The bump first: a writer that no longer finds the entry sees it. */
		pg_atomic_fetch_add_u64(&changes_shared->generation, 1);
		if (!prepare)
		{
			LWLockAcquire(changes_shared->lock, LW_EXCLUSIVE);
			for (i = 0; i < CHANGES_IN_PROGRESS_MAX; i++)
				if (TransactionIdEquals(changes_shared->in_progress[i].xid, mine))
				{
					changes_shared->in_progress[i].xid = InvalidTransactionId;
					pg_atomic_fetch_sub_u32(&changes_shared->in_progress_count, 1);
				}
			LWLockRelease(changes_shared->lock);
		}
	}
	covered = NULL;
	covered_locked = 0;
	my_slot = -1;
	covered_every = false;
	changing = InvalidTransactionId;
}

static void
changes_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			changes_xact_end(false);
			break;
		case XACT_EVENT_PRE_PREPARE:
			changes_xact_end(true);
			break;
		default:
			break;
	}
}

/*
 * changes_set_callbacks
 *		Called once by the holder of the customers' settings cache
 *		(customers.c): forget_settings drops the session's cached settings at
 *		their next use; change_all is the global protocol a change falls back
 *		to.  The protocol tells the cache, rather than knowing it.
 */
void
changes_set_callbacks(ChangesCallback forget_settings,
					  ChangesCallback change_all)
{
	changes_forget_settings = forget_settings;
	changes_change_all = change_all;
}

/*
 * changes_init
 *		From _PG_init: the transaction callback always, the shared state only
 *		when preloaded.
 */
void
changes_init(void)
{
	RegisterXactCallback(changes_xact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = changes_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = changes_shmem_startup;
}
