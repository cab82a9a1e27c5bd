"""The EIP-712 digest every attester, the pool and the verifier compute (``shared.messages``)
equals eth-account's full ``encode_typed_data`` route for any message and domain."""

from __future__ import annotations

from eth_account.messages import _hash_eip191_message
from hypothesis import given
from hypothesis import strategies as st

from shared.messages import Domain, LockAttestation, Settlement, SettlementKind, digest, signable

b32 = st.binary(min_size=32, max_size=32)
u64 = st.integers(0, 2**64 - 1)
address = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
domains = st.builds(Domain, u64, address)
locks = st.builds(LockAttestation, u64, b32, b32, b32, address, b32, st.integers(1, 2**256 - 1),
                  st.integers(0, 18), b32, st.integers(0, 2**32 - 1))
settlements = st.builds(Settlement, u64, b32, b32, b32, st.integers(0, 2**256 - 1),
                        st.sampled_from(list(SettlementKind)), b32, st.integers(0, 2**32 - 1))


@given(st.one_of(locks, settlements), domains)
def test_digest_equals_the_full_typed_data_route(msg: LockAttestation | Settlement,
                                                 domain: Domain) -> None:
    assert digest(msg, domain) == bytes(_hash_eip191_message(signable(msg, domain)))
