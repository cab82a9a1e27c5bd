// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title AttesterRegistry
/// @notice Stored attester sets and the quorum check of DESIGN §2.6, shared by the venue (credits)
/// and the vault (settlements). Each contract verifies against its OWN stored sets.
/// @dev Sets are indexed by a uint32 that only increases (I4): the first `rotateAttesterSet`
/// installs index 0. A set is `n` strictly increasing, non-zero addresses and a threshold `m`
/// with n/2 < m <= n (KEY-02, I15). After a rotation the previous set stays valid while
/// `block.timestamp <= graceEnd`; older sets are never valid again. Sets change only through the
/// owner (governance path), never through a data message.
abstract contract AttesterRegistry is Ownable2Step {
    /// @notice Upper bound on the members of one set (matches the wire codec's signature cap).
    uint256 public constant MAX_ATTESTERS = 64;

    struct AttesterSetInfo {
        uint8 threshold;
        /// @dev 0 while the set is current; set when the set is rotated out.
        uint64 graceEnd;
        address[] members;
    }

    mapping(uint32 index => AttesterSetInfo) private _sets;
    mapping(uint32 index => mapping(address member => bool)) private _isMember;
    /// @dev Number of sets ever installed; the current index is `_setCount - 1`.
    uint32 private _setCount;

    event AttesterSetRotated(
        uint32 indexed index, address[] members, uint8 threshold, uint64 previousGraceEnd
    );

    error EmptyAttesterSet();
    error TooManyAttesters(uint256 n);
    error InvalidThreshold(uint8 threshold, uint256 n);
    error ZeroAttester();
    error DuplicateAttester(address member);
    error AttestersNotSorted(uint256 position);
    error NoAttesterSet();
    error AttesterSetNotLive(uint32 index);
    error BadSignature(uint256 position);
    error SignersNotIncreasing(uint256 position);
    error NotAttester(uint256 position, address signer);
    error QuorumNotReached(uint256 have, uint256 need);

    /// @notice Install a new attester set at the next index. The current set (if any) remains
    /// valid for `graceSeconds` more seconds of chain time.
    /// @param members strictly increasing, non-zero addresses (the order signatures come in).
    /// @param threshold m with n/2 < m <= n.
    function rotateAttesterSet(address[] calldata members, uint8 threshold, uint64 graceSeconds)
        external
        onlyOwner
    {
        uint256 n = members.length;
        if (n == 0) revert EmptyAttesterSet();
        if (n > MAX_ATTESTERS) revert TooManyAttesters(n);
        // SECURITY: a strict majority, never more than the members (Harmony 2-of-5).
        if (threshold == 0 || threshold > n || 2 * uint256(threshold) <= n) {
            revert InvalidThreshold(threshold, n);
        }
        if (members[0] == address(0)) revert ZeroAttester();
        for (uint256 i = 1; i < n; ++i) {
            if (members[i] == members[i - 1]) revert DuplicateAttester(members[i]);
            if (members[i] < members[i - 1]) revert AttestersNotSorted(i);
        }

        uint32 index = _setCount;
        uint64 previousGraceEnd;
        if (index > 0) {
            previousGraceEnd = uint64(block.timestamp) + graceSeconds;
            _sets[index - 1].graceEnd = previousGraceEnd;
        }
        AttesterSetInfo storage set = _sets[index];
        set.threshold = threshold;
        set.members = members;
        for (uint256 i = 0; i < n; ++i) {
            _isMember[index][members[i]] = true;
        }
        _setCount = index + 1;
        emit AttesterSetRotated(index, members, threshold, previousGraceEnd);
    }

    /// @notice Index of the current set; reverts with NoAttesterSet before the first rotation.
    function currentAttesterSetIndex() public view returns (uint32) {
        if (_setCount == 0) revert NoAttesterSet();
        return _setCount - 1;
    }

    function attesterSet(uint32 index)
        external
        view
        returns (address[] memory members, uint8 threshold, uint64 graceEnd)
    {
        AttesterSetInfo storage set = _sets[index];
        return (set.members, set.threshold, set.graceEnd);
    }

    /// @notice True iff signatures of set `index` are accepted now (current, or previous in grace).
    function isAttesterSetLive(uint32 index) public view returns (bool) {
        uint32 count = _setCount;
        if (count == 0 || index >= count) return false;
        if (index == count - 1) return true;
        return index + 2 == count && block.timestamp <= _sets[index].graceEnd;
    }

    /// @dev SECURITY: the one quorum check. Every signature must recover (OpenZeppelin ECDSA:
    /// 65 bytes, low s, v in {27, 28}) to a member of set `setIndex`, signers strictly increasing
    /// (so no signer counts twice), and there must be at least that set's stored threshold of
    /// them. The threshold is never taken from the message.
    function _verifyQuorum(bytes32 digest, uint32 setIndex, bytes[] calldata sigs) internal view {
        if (!isAttesterSetLive(setIndex)) revert AttesterSetNotLive(setIndex);
        uint256 need = _sets[setIndex].threshold;
        uint256 have = sigs.length;
        if (have < need) revert QuorumNotReached(have, need);
        mapping(address => bool) storage isMember = _isMember[setIndex];
        address previous = address(0);
        for (uint256 i = 0; i < have; ++i) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, sigs[i]);
            if (err != ECDSA.RecoverError.NoError) revert BadSignature(i);
            if (signer <= previous) revert SignersNotIncreasing(i);
            if (!isMember[signer]) revert NotAttester(i, signer);
            previous = signer;
        }
    }
}
