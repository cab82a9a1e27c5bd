"""RedisLockStore against a real redis-server: same semantics as the memory store, survives
reconnects, and a FLUSHALL is recovered by a rescan (the watcher test covers the rescan)."""

import pytest

from chains.testing import make_event
from shared.errors import StoreError
from shared.locks import LockRecord, LockState
from workers.stores.locks import RedisLockStore

pytestmark = pytest.mark.integration


def test_records_cursor_and_hashes_round_trip(redis_url: str) -> None:
    store = RedisLockStore(redis_url)
    rec = LockRecord.first_seen(make_event("evm-a", 1, 125_500_000, height=7, block_hash="0xab"), 1)
    store.put([rec])
    assert store.get(rec.key) == rec
    assert store.open_records("evm-a") == [rec]
    final = rec.advanced(LockState.FINALIZED, 15, 2)
    store.put([final])
    assert store.open_records("evm-a") == [] and store.all_records() == [final]
    store.set_cursor("evm-a", 42)
    store.remember_hash("evm-a", 40, "0x40")
    store.remember_hash("evm-a", 42, "0x42")
    store.forget_hashes("evm-a", below=41)
    assert store.cursor("evm-a") == 42 and store.hashes("evm-a") == {42: "0x42"}
    store.forget_hashes("evm-a", above=41)
    assert store.hashes("evm-a") == {}
    store.close()


def test_listing_order_is_first_seen(redis_url: str) -> None:
    store = RedisLockStore(redis_url)
    recs = [LockRecord.first_seen(make_event("evm-a", n, n), at_ms=100 - n) for n in range(1, 4)]
    store.put(recs)
    assert [r.event.nonce for r in store.all_records()] == [3, 2, 1]


def test_unreachable_redis_is_a_typed_error() -> None:
    store = RedisLockStore("redis://127.0.0.1:9/0")
    with pytest.raises(StoreError):
        store.ping()
    with pytest.raises(StoreError):
        store.cursor("evm-a")



def test_rt_04_a_cursor_read_before_a_flushall_cannot_be_written_after_it(redis_url: str) -> None:
    """The epoch a scan took before the reset refuses its cursor write after it, in both stores
    with a cursor (the watcher's and the settlement watcher's); a fresh epoch writes again."""
    import redis

    from workers.stores.settlements import RedisSettlementStore

    for store in (RedisLockStore(redis_url), RedisSettlementStore(redis_url)):
        epoch = store.epoch()
        assert store.epoch() == epoch  # stable while the store lives
        assert store.set_cursor("evm-a", 10, epoch=epoch) and store.cursor("evm-a") == 10
        redis.Redis.from_url(redis_url).flushall()
        assert store.set_cursor("evm-a", 20, epoch=epoch) is False
        assert store.cursor("evm-a") is None  # the rescan starts over from the deployment
        fresh = store.epoch()
        assert fresh != epoch and store.set_cursor("evm-a", 5, epoch=fresh)
        assert store.cursor("evm-a") == 5
        store.close()
