// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {AttesterRegistry} from "./AttesterRegistry.sol";
import {VenueCore} from "./VenueCore.sol";
import {VenueRiskModule} from "./VenueRiskModule.sol";

/// @title IsolatedMarginVenue
/// @notice The venue on the venue chain. One position = one market, one side, one size and its
/// own collateral entries, keyed by `positionKeyOf` (DESIGN §2.5), so collateral backing one
/// position can never reach another.
///
/// Credits (DESIGN §2.4, §2.7): a `LockAttestation` signed by a quorum of this venue's stored
/// attester set (EIP-712 domain "Bulkhead" / "1" / this chain / this venue) is credited once to
/// its `positionKey`. Rules, in the order checked:
///  1. version == 1, amount in 1..2^128-1, non-zero beneficiary and position key;
///  2. the (srcChainId, srcVault, srcAsset) lane asset is registered by the owner, with the same
///     decimals (<= 18);
///  3. replay key keccak256(abi.encode(srcChainId, srcVault, lockId)) never seen (RPL-01);
///  4. quorum of the set named by the attestation, over the digest of every field (I3);
///  5. the beneficiary owns the position (first credit, or `claimPosition`, records the owner);
///  6. accountant (I1): per lane asset, `outstanding + amount <= ceiling`, where outstanding =
///     credited (including queued) - released - seized, in source units, and the ceiling is set
///     by the owner to at most what the source vault can back;
///  7. governor (I11, LIM-01), per (srcChainId, srcAsset), FIXED 24 h windows aligned to
///     multiples of 1 day of chain time: amount > cap is refused; amount > largeThreshold is
///     queued until now + delay; a credit that does not fit the window's remaining room is
///     queued until the next window starts. `releaseQueued(key)` (anyone) credits a queued lock
///     once its time has come and the current window has room. The lock is consumed when it is
///     queued, so a queued lock can never be credited twice.
/// Collateral is kept per position in 18 decimals: amount * 10^(18 - decimals). Decimals are
/// at most 18, so the conversion is exact (the round-down rule of I10 never drops anything).
/// A position holds at most MAX_POSITION_LOCKS credited locks with a non-zero remainder
/// (`TooManyLocks`), so valuing or liquidating it is bounded; a queued lock takes its slot when
/// `releaseQueued` credits it.
///
/// Trading and liquidation (DESIGN §3; the integer rules are in `VenueCore`): the owner sets
/// markets (`setMarket`), each collateral lane's oracle market, haircut and price bounds
/// (`setCollateral`) and the oracle; the RISK role (`riskUpdater`) sets each market's volatility buffer within the
/// owner's max. `open`, `increase`, `reduce`, `close` (position owner, not while paused) and
/// `liquidate` (anyone, also while paused) run in `VenueRiskModule` by DELEGATECALL: the code is
/// split there to keep each contract under 24 KB; storage, events and errors are the venue's.
/// Release rule (`requestRelease`, I7, LIQ-03): when the position has an open trade, or a
/// negative `realized`, the release must leave E >= IM, valued after removing the amount at
/// prices valid for user actions (the newest oracle state at execution); with an open trade it
/// is also refused while a liquidation sequence is pending (within cooldownS of the last
/// liquidation). Releases only ever return collateral: realized losses lower E and so what can
/// be released; a positive `realized` is never paid out by a release.
///
/// Automated top-up (DESIGN §3 "Automated rebalancing"; details at `VenueRiskModule.topUp`): the
/// owner of two positions may register on one of them (the target) a rule naming the other as
/// its reserve (`setTopUpRule(target, source, thresholdPpm, maxUsdE18)`). Free collateral is a
/// credited lock on the reserve while the reserve has no open trade. When the target's
/// E * 1e6 < MM * thresholdPpm at liquidation-class prices, anyone (the risk worker's keeper)
/// may move one WHOLE reserve lock into the target with `topUp(target, lockKey)`, up to the
/// rule's cumulative `maxUsdE18`. This is the one operation that changes two positions, and
/// only by the owner's standing instruction between the owner's own positions (I6). The lock
/// keeps its source lane, source owner and remaining amount; only the position it backs
/// changes, so every later release or seizure of it settles, per lock as always, to the same
/// source vault and source-chain owner, and the lane's outstanding credit (I1) is unchanged.
/// @dev Storage lives in `VenueCore` (first base, shared with the module). Append only.
contract IsolatedMarginVenue is VenueCore, AttesterRegistry, EIP712, Pausable {
    uint8 public constant ATTESTATION_VERSION = 1;
    uint256 public constant WINDOW = 1 days;

    bytes32 public constant LOCK_ATTESTATION_TYPEHASH = keccak256(
        "LockAttestation(uint8 version,uint64 srcChainId,bytes32 srcVault,bytes32 lockId,"
        "bytes32 owner,address beneficiary,bytes32 srcAsset,uint256 amount,uint8 decimals,"
        "bytes32 positionKey,uint32 attesterSetIndex)"
    );

    /// @notice The EIP-712 struct of DESIGN §2.4. Field order is the type string's order.
    struct LockAttestation {
        uint8 version;
        uint64 srcChainId;
        bytes32 srcVault;
        bytes32 lockId;
        bytes32 owner;
        address beneficiary;
        bytes32 srcAsset;
        uint256 amount;
        uint8 decimals;
        bytes32 positionKey;
        uint32 attesterSetIndex;
    }

    /// @notice The trading module this venue DELEGATECALLs (created by the constructor).
    address public immutable riskModule;

    event LaneAssetRegistered(
        uint64 indexed srcChainId, bytes32 indexed srcVault, bytes32 indexed srcAsset, uint8 decimals
    );
    event LaneCeilingSet(bytes32 indexed laneAssetKey, uint256 ceiling);
    event RateLimitSet(
        uint64 indexed srcChainId, bytes32 indexed srcAsset, uint256 cap, uint256 largeThreshold,
        uint64 delay
    );
    event PositionOwnerSet(bytes32 indexed positionKey, address indexed owner);
    event Credited(
        bytes32 indexed positionKey,
        uint64 indexed srcChainId,
        bytes32 srcVault,
        bytes32 indexed lockId,
        bytes32 srcAsset,
        uint256 amount,
        uint256 amount18,
        address beneficiary
    );
    /// @param reason 1 = above the large-transfer threshold, 2 = the window is full.
    event CreditQueued(
        bytes32 indexed lockKey,
        bytes32 indexed positionKey,
        uint64 srcChainId,
        bytes32 srcVault,
        bytes32 lockId,
        bytes32 srcAsset,
        uint256 amount,
        uint48 releaseAt,
        uint8 reason
    );
    /// @notice A queued lock was credited by `releaseQueued` (its lane is in CreditQueued).
    event QueuedCreditReleased(
        bytes32 indexed lockKey, bytes32 indexed positionKey, uint256 amount, uint256 amount18
    );
    /// @notice A batch item that was refused; `reason` is the item's revert data (custom error).
    event CreditSkipped(uint256 indexed index, bytes32 indexed lockKey, bytes reason);
    error UnsupportedVersion(uint8 version);
    error ZeroAmount();
    error AmountTooLarge(uint256 amount);
    error ZeroBeneficiary();
    error ZeroPositionKey();
    error DecimalsTooLarge(uint8 decimals);
    error LaneAssetAlreadyRegistered(bytes32 laneAssetKey);
    error UnregisteredLaneAsset(uint64 srcChainId, bytes32 srcVault, bytes32 srcAsset);
    error DecimalsMismatch(uint8 registered, uint8 given);
    error AlreadyConsumed(bytes32 key);
    error LaneCeilingExceeded(bytes32 laneAssetKey, uint256 outstanding, uint256 amount, uint256 ceiling);
    error NoRateLimit(uint64 srcChainId, bytes32 srcAsset);
    error InvalidRateLimit();
    error ExceedsCap(uint256 amount, uint256 cap);
    error NotQueued(bytes32 key);
    error QueuedUntil(bytes32 key, uint48 releaseAt);
    error WindowFull(uint256 used, uint256 amount, uint256 cap, uint256 nextWindow);
    error BatchLengthMismatch(uint256 attestations, uint256 signatureSets);
    error NotPauser(address account);
    error LaneIsPaused(bytes32 laneAssetKey);

    /// @notice Accounts that may pause one lane (and nothing else): the accountant's key.
    mapping(address account => bool) public isPauser;
    /// @notice Lanes (source chain, vault, asset) whose credits are stopped until the owner
    /// resumes them; liquidations, trading and settlements go on.
    mapping(bytes32 laneAssetKey => bool) public lanePaused;

    event PauserSet(address indexed account, bool allowed);
    event LanePaused(bytes32 indexed laneAssetKey, address indexed by);
    event LaneResumed(bytes32 indexed laneAssetKey);
    error ExceedsLockCredit(uint256 remaining, uint256 amount);

    constructor(address initialOwner) Ownable(initialOwner) EIP712("Bulkhead", "1") {
        riskModule = address(new VenueRiskModule());
    }

    // ----- views ----------------------------------------------------------------------------

    /// @notice The key a trader's collateral is locked for, known before any collateral moves.
    function positionKeyOf(address owner_, bytes32 salt) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), owner_, salt));
    }

    /// @notice Replay key of a lock: keccak256(abi.encode(srcChainId, srcVault, lockId)).
    function lockKeyOf(uint64 srcChainId, bytes32 srcVault, bytes32 lockId)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(srcChainId, srcVault, lockId));
    }

    function laneAssetKeyOf(uint64 srcChainId, bytes32 srcVault, bytes32 srcAsset)
        public
        pure
        returns (bytes32)
    {
        return _laneAssetKey(srcChainId, srcVault, srcAsset);
    }

    function rateKeyOf(uint64 srcChainId, bytes32 srcAsset) public pure returns (bytes32) {
        return _pairKey(srcChainId, srcAsset);
    }

    /// @notice The full EIP-712 digest (domain of this venue) that attesters sign.
    function hashLockAttestation(LockAttestation calldata a) public view returns (bytes32) {
        // All fields are static, so abi.encode(struct) is exactly EIP-712 encodeData.
        return _hashTypedDataV4(keccak256(abi.encode(LOCK_ATTESTATION_TYPEHASH, a)));
    }

    function laneAsset(uint64 srcChainId, bytes32 srcVault, bytes32 srcAsset)
        external
        view
        returns (LaneAsset memory)
    {
        return _laneAssets[laneAssetKeyOf(srcChainId, srcVault, srcAsset)];
    }

    function rateLimit(uint64 srcChainId, bytes32 srcAsset) external view returns (RateLimit memory) {
        return _rateLimits[rateKeyOf(srcChainId, srcAsset)];
    }

    function lockCredit(bytes32 key) external view returns (LockCredit memory) {
        return _credits[key];
    }

    function isConsumed(bytes32 key) external view returns (bool) {
        return _credits[key].status != LockStatus.None;
    }

    function ownerOfPosition(bytes32 positionKey) external view returns (address) {
        return _owners[positionKey];
    }

    /// @notice Credited collateral of a position from one (source chain, asset), 18 decimals.
    function collateralOf(bytes32 positionKey, uint64 srcChainId, bytes32 srcAsset)
        external
        view
        returns (uint256)
    {
        return _collateral18[positionKey][srcChainId][srcAsset];
    }

    // ----- admin (owner) --------------------------------------------------------------------

    function pause() external onlyOwner {
        _pause();
    }

    function unpause() external onlyOwner {
        _unpause();
    }

    /// @notice Accept `srcAsset` from the vault `srcVault` on `srcChainId`. Decimals are final.
    function registerLaneAsset(
        uint64 srcChainId,
        bytes32 srcVault,
        bytes32 srcAsset,
        uint8 decimals,
        uint128 ceiling
    ) external onlyOwner {
        if (decimals > 18) revert DecimalsTooLarge(decimals);
        bytes32 key = laneAssetKeyOf(srcChainId, srcVault, srcAsset);
        LaneAsset storage la = _laneAssets[key];
        if (la.registered) revert LaneAssetAlreadyRegistered(key);
        la.registered = true;
        la.decimals = decimals;
        la.ceiling = ceiling;
        emit LaneAssetRegistered(srcChainId, srcVault, srcAsset, decimals);
        emit LaneCeilingSet(key, ceiling);
    }

    /// @notice Change a lane asset's accountant ceiling (source units). Lowering it below the
    /// outstanding amount blocks new credits until releases bring it down.
    function setLaneCeiling(uint64 srcChainId, bytes32 srcVault, bytes32 srcAsset, uint128 ceiling)
        external
        onlyOwner
    {
        bytes32 key = laneAssetKeyOf(srcChainId, srcVault, srcAsset);
        if (!_laneAssets[key].registered) revert UnregisteredLaneAsset(srcChainId, srcVault, srcAsset);
        _laneAssets[key].ceiling = ceiling;
        emit LaneCeilingSet(key, ceiling);
    }

    /// @notice Governor for (srcChainId, srcAsset), source units: 0 < largeThreshold <= cap.
    function setRateLimit(
        uint64 srcChainId,
        bytes32 srcAsset,
        uint128 cap,
        uint128 largeThreshold,
        uint64 delay
    ) external onlyOwner {
        if (cap == 0 || largeThreshold == 0 || largeThreshold > cap) revert InvalidRateLimit();
        RateLimit storage r = _rateLimits[rateKeyOf(srcChainId, srcAsset)];
        r.cap = cap;
        r.largeThreshold = largeThreshold;
        r.delay = delay;
        emit RateLimitSet(srcChainId, srcAsset, cap, largeThreshold, delay);
    }

    // ----- positions ------------------------------------------------------------------------

    /// @notice Record the caller as the owner of `positionKeyOf(caller, salt)` before locking,
    /// so nobody else's lock can claim the key first. Optional: the first credit also records
    /// its beneficiary as the owner.
    function claimPosition(bytes32 salt) external returns (bytes32 positionKey) {
        positionKey = positionKeyOf(msg.sender, salt);
        address current = _owners[positionKey];
        if (current == address(0)) {
            _owners[positionKey] = msg.sender;
            emit PositionOwnerSet(positionKey, msg.sender);
        } else if (current != msg.sender) {
            revert NotPositionOwner(positionKey, msg.sender);
        }
    }

    // ----- lane pauses (the accountant; DESIGN §2.7) ------------------------------------------

    /// @notice Owner: allow or revoke an account's right to pause lanes.
    function setPauser(address account, bool allowed) external onlyOwner {
        if (account == address(0)) revert NotPauser(account);
        isPauser[account] = allowed;
        emit PauserSet(account, allowed);
    }

    /// @notice A pauser (or the owner): stop credits on one lane at once. Pausing only: a
    /// pauser can neither resume a lane nor move anything.
    function pauseLane(uint64 srcChainId, bytes32 srcVault, bytes32 srcAsset) external {
        if (!isPauser[msg.sender] && msg.sender != owner()) revert NotPauser(msg.sender);
        bytes32 key = laneAssetKeyOf(srcChainId, srcVault, srcAsset);
        lanePaused[key] = true;
        emit LanePaused(key, msg.sender);
    }

    /// @notice Owner: resume a paused lane.
    function resumeLane(uint64 srcChainId, bytes32 srcVault, bytes32 srcAsset) external onlyOwner {
        bytes32 key = laneAssetKeyOf(srcChainId, srcVault, srcAsset);
        lanePaused[key] = false;
        emit LaneResumed(key);
    }

    // ----- credits --------------------------------------------------------------------------

    /// @notice Credit (or queue) one attested lock. Reverts with a custom error on any refusal;
    /// a second submission of a consumed lock reverts with AlreadyConsumed(key).
    function credit(LockAttestation calldata a, bytes[] calldata sigs) external whenNotPaused {
        _credit(a, sigs);
    }

    /// @notice Credit many attested locks in one transaction. Items are independent: an item
    /// that is refused does not revert the batch; it is skipped with `CreditSkipped(index, key,
    /// revert data)` and leaves no state behind (it runs in its own call frame). A skipped item
    /// is not consumed and may be submitted again.
    /// @return credited number of items credited or queued.
    function creditBatch(LockAttestation[] calldata atts, bytes[][] calldata sigs)
        external
        whenNotPaused
        returns (uint256 credited)
    {
        if (atts.length != sigs.length) revert BatchLengthMismatch(atts.length, sigs.length);
        for (uint256 i = 0; i < atts.length; ++i) {
            uint256 left = gasleft();
            if (left < BATCH_ITEM_GAS) revert BatchOutOfGas(i, left);
            try this.creditFromBatch(atts[i], sigs[i]) {
                ++credited;
            } catch (bytes memory reason) {
                LockAttestation calldata a = atts[i];
                emit CreditSkipped(i, lockKeyOf(a.srcChainId, a.srcVault, a.lockId), reason);
            }
        }
    }

    /// @dev One batch item in its own frame, so its refusal rolls back only itself.
    function creditFromBatch(LockAttestation calldata a, bytes[] calldata sigs) external {
        if (msg.sender != address(this)) revert OnlySelf();
        _credit(a, sigs);
    }

    /// @notice Credit a queued lock once its release time has come and the window has room.
    /// Anyone may call it; the credit goes to the position recorded when the lock was queued.
    function releaseQueued(bytes32 key) external whenNotPaused {
        LockCredit storage c = _credits[key];
        if (c.status != LockStatus.Queued) revert NotQueued(key);
        bytes32 laKey = laneAssetKeyOf(c.srcChainId, _lockRefs[key].srcVault, c.srcAsset);
        if (lanePaused[laKey]) revert LaneIsPaused(laKey);
        if (block.timestamp < c.releaseAt) revert QueuedUntil(key, c.releaseAt);
        uint256 amount = c.remaining;
        RateLimit storage r = _rateLimits[rateKeyOf(c.srcChainId, c.srcAsset)];
        if (amount > r.cap) revert ExceedsCap(amount, r.cap);
        _roll(r);
        if (r.used + amount > r.cap) revert WindowFull(r.used, amount, r.cap, r.windowStart + WINDOW);
        r.used += uint128(amount);
        c.status = LockStatus.Credited;
        c.releaseAt = 0;
        uint256 amount18 = amount * 10 ** (18 - c.decimals);
        _collateral18[c.positionKey][c.srcChainId][c.srcAsset] += amount18;
        _addLock(c.positionKey, key);
        emit QueuedCreditReleased(key, c.positionKey, amount, amount18);
    }

    function _credit(LockAttestation calldata a, bytes[] calldata sigs) private {
        if (a.version != ATTESTATION_VERSION) revert UnsupportedVersion(a.version);
        if (a.amount == 0) revert ZeroAmount();
        if (a.amount > type(uint128).max) revert AmountTooLarge(a.amount);
        if (a.beneficiary == address(0)) revert ZeroBeneficiary();
        if (a.positionKey == bytes32(0)) revert ZeroPositionKey();

        bytes32 laKey = laneAssetKeyOf(a.srcChainId, a.srcVault, a.srcAsset);
        // SECURITY: a lane the accountant paused takes no credit, whatever the signatures.
        if (lanePaused[laKey]) revert LaneIsPaused(laKey);
        LaneAsset storage la = _laneAssets[laKey];
        if (!la.registered) revert UnregisteredLaneAsset(a.srcChainId, a.srcVault, a.srcAsset);
        if (la.decimals != a.decimals) revert DecimalsMismatch(la.decimals, a.decimals);

        // SECURITY: at most once per (srcChainId, srcVault, lockId), never keyed by signatures.
        bytes32 key = lockKeyOf(a.srcChainId, a.srcVault, a.lockId);
        if (_credits[key].status != LockStatus.None) revert AlreadyConsumed(key);

        // SECURITY: m distinct members of the named, live, stored set over the full digest.
        _verifyQuorum(hashLockAttestation(a), a.attesterSetIndex, sigs);

        address owner_ = _owners[a.positionKey];
        if (owner_ == address(0)) {
            _owners[a.positionKey] = a.beneficiary;
            emit PositionOwnerSet(a.positionKey, a.beneficiary);
        } else if (owner_ != a.beneficiary) {
            revert NotPositionOwner(a.positionKey, a.beneficiary);
        }

        // SECURITY: accountant (I1) — valid signatures are not enough.
        uint256 amount = a.amount;
        if (la.outstanding + amount > la.ceiling) {
            revert LaneCeilingExceeded(laKey, la.outstanding, amount, la.ceiling);
        }
        la.outstanding += uint128(amount);

        (uint48 releaseAt, uint8 reason) = _admit(a.srcChainId, a.srcAsset, amount);
        _credits[key] = LockCredit({
            positionKey: a.positionKey,
            srcAsset: a.srcAsset,
            srcOwner: a.owner,
            remaining: uint128(amount),
            srcChainId: a.srcChainId,
            status: reason == 0 ? LockStatus.Credited : LockStatus.Queued,
            decimals: a.decimals,
            releaseAt: releaseAt
        });
        _lockRefs[key] = LockRef({srcVault: a.srcVault, lockId: a.lockId});
        if (reason == 0) {
            uint256 amount18 = amount * 10 ** (18 - a.decimals);
            _collateral18[a.positionKey][a.srcChainId][a.srcAsset] += amount18;
            _addLock(a.positionKey, key);
            _emitCredited(a, amount18);
        } else {
            _emitQueued(a, key, releaseAt, reason);
        }
    }

    function _emitCredited(LockAttestation calldata a, uint256 amount18) private {
        emit Credited(
            a.positionKey, a.srcChainId, a.srcVault, a.lockId, a.srcAsset, a.amount, amount18,
            a.beneficiary
        );
    }

    function _emitQueued(LockAttestation calldata a, bytes32 key, uint48 releaseAt, uint8 reason)
        private
    {
        emit CreditQueued(
            key, a.positionKey, a.srcChainId, a.srcVault, a.lockId, a.srcAsset, a.amount,
            releaseAt, reason
        );
    }

    /// @dev Governor decision: (0, 0) = credit now (window usage taken); otherwise queue until
    /// `releaseAt` for `reason` (1 large, 2 window full). Reverts above the whole cap.
    function _admit(uint64 srcChainId, bytes32 srcAsset, uint256 amount)
        private
        returns (uint48 releaseAt, uint8 reason)
    {
        RateLimit storage r = _rateLimits[rateKeyOf(srcChainId, srcAsset)];
        if (r.cap == 0) revert NoRateLimit(srcChainId, srcAsset);
        if (amount > r.cap) revert ExceedsCap(amount, r.cap);
        if (amount > r.largeThreshold) return (uint48(block.timestamp + r.delay), 1);
        _roll(r);
        if (r.used + amount > r.cap) return (uint48(r.windowStart + WINDOW), 2);
        r.used += uint128(amount);
        return (0, 0);
    }

    function _roll(RateLimit storage r) private {
        uint64 start = uint64(block.timestamp - (block.timestamp % WINDOW));
        if (r.windowStart != start) {
            r.windowStart = start;
            r.used = 0;
        }
    }

    // ----- the way back ---------------------------------------------------------------------

    /// @notice Ask for `amount` (source units) of one credited lock to be released to the
    /// source-chain owner who locked it. Only the position owner; the attesters then sign a
    /// `Settlement` for the source vault from the SettlementRequested event. With an open trade
    /// (or a negative realized ledger) the release must leave E >= IM at user-action prices, and
    /// is refused while a liquidation is pending (see the contract notice).
    function requestRelease(
        bytes32 positionKey,
        uint64 srcChainId,
        bytes32 srcVault,
        bytes32 lockId,
        uint256 amount
    ) external returns (bytes32 settlementId) {
        if (_owners[positionKey] != msg.sender) revert NotPositionOwner(positionKey, msg.sender);
        _requireNoPendingLiquidation(positionKey);
        bytes32 key = lockKeyOf(srcChainId, srcVault, lockId);
        LockCredit storage c = _credits[key];
        if (c.status != LockStatus.Credited) revert NotCredited(key);
        if (c.positionKey != positionKey) revert LockNotInPosition(key, positionKey);
        if (amount == 0) revert ZeroAmount();
        if (amount > c.remaining) revert ExceedsLockCredit(c.remaining, amount);

        settlementId = _requestSettlement(positionKey, c, srcVault, lockId, amount, KIND_RELEASE);
        if (c.remaining == 0) _removeLock(positionKey, key);
        // SECURITY (I7, LIQ-03): checked after the effects, at execution, on the newest prices.
        _requireInitialMargin(positionKey);
    }

    /// @dev A liquidation sequence is pending while an open trade is within cooldownS of its
    /// last liquidation. (A liquidatable position fails the E >= IM check anyway: MM <= IM.)
    function _requireNoPendingLiquidation(bytes32 positionKey) private view {
        Position storage p = _positions[positionKey];
        uint256 last = p.lastLiquidation;
        if (p.sizeE18 == 0 || last == 0) return;
        uint256 until = last + _markets[p.market].cooldownS;
        if (block.timestamp < until) revert LiquidationPending(positionKey, until);
    }

    // ----- trading (DELEGATECALL into the module) -------------------------------------------

    /// @notice Open a trade on a flat position (owner only): see `VenueRiskModule.open`.
    function open(bytes32, bytes32, int256) external whenNotPaused {
        _delegate();
    }

    /// @notice Add to the open trade, same side (owner only): see `VenueRiskModule.increase`.
    function increase(bytes32, uint256) external whenNotPaused {
        _delegate();
    }

    /// @notice Close part of the trade (owner only): see `VenueRiskModule.reduce`.
    function reduce(bytes32, uint256) external whenNotPaused {
        _delegate();
    }

    /// @notice Close the whole trade and settle its losses (owner only): `VenueRiskModule.close`.
    function close(bytes32) external whenNotPaused {
        _delegate();
    }

    /// @notice Liquidate (anyone; works while paused): see `VenueRiskModule.liquidate`.
    function liquidate(bytes32, uint256) external {
        _delegate();
    }

    /// @notice Liquidate many positions in one transaction (anyone; works while paused), each
    /// re-checked on chain in its own frame: see `VenueRiskModule.liquidateBatch`.
    function liquidateBatch(bytes32[] calldata, uint256[] calldata) external returns (uint256) {
        _delegate();
    }

    /// @dev One `liquidateBatch` item in its own frame; only this contract may call it.
    function liquidateFromBatch(bytes32, uint256) external {
        _delegate();
    }

    /// @dev Run the same calldata in the module against this contract's storage; bubble its
    /// return data or revert data unchanged.
    function _delegate() private {
        address module = riskModule;
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), module, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // ----- risk settings (run in the module) -----------------------------------------------

    /// @notice The MarkOracle the venue reads (owner): `VenueRiskModule.setOracle`.
    function setOracle(address) external onlyOwner {
        _delegate();
    }

    /// @notice Name the RISK role (owner): `VenueRiskModule.setRiskUpdater`.
    function setRiskUpdater(address) external onlyOwner {
        _delegate();
    }

    /// @notice Create or change a market (owner): `VenueRiskModule.setMarket`.
    function setMarket(bytes32, MarketParams calldata) external onlyOwner {
        _delegate();
    }

    /// @notice Set a market's volatility buffer (RISK role): `VenueRiskModule.setBuffer`.
    function setBuffer(bytes32, uint256) external {
        _delegate();
    }

    /// @notice Price a collateral lane (owner): `VenueRiskModule.setCollateral`.
    function setCollateral(CollateralLane calldata) external onlyOwner {
        _delegate();
    }

    /// @notice Add to the insurance fund (owner): `VenueRiskModule.fundInsurance`.
    function fundInsurance(uint256) external onlyOwner {
        _delegate();
    }

    // ----- automated top-up (run in the module; position owners and keepers) ----------------

    /// @notice Register a top-up rule (owner of both positions): `VenueRiskModule.setTopUpRule`.
    function setTopUpRule(bytes32, bytes32, uint32, uint256) external {
        _delegate();
    }

    /// @notice Remove a position's top-up rule (its owner): `VenueRiskModule.clearTopUpRule`.
    function clearTopUpRule(bytes32) external {
        _delegate();
    }

    /// @notice Move one reserve lock into a position under its rule (anyone; works while
    /// paused, like `liquidate`, which it exists to prevent): `VenueRiskModule.topUp`.
    function topUp(bytes32, bytes32) external {
        _delegate();
    }

    /// @notice The top-up rule of `positionKey` (sourceKey 0: none) and the value it moved.
    function topUpRuleOf(bytes32 positionKey)
        external
        view
        returns (bytes32 sourceKey, uint32 thresholdPpm, uint256 maxUsdE18, uint256 usedUsdE18)
    {
        TopUpRule memory r = _topUpRules[positionKey];
        return (r.sourceKey, r.thresholdPpm, r.maxUsdE18, r.usedUsdE18);
    }

    // ----- risk views -----------------------------------------------------------------------

    function positionOf(bytes32 positionKey)
        external
        view
        returns (
            bytes32 market,
            int256 sizeE18,
            uint256 entryE8,
            int256 realizedUsdE18,
            uint64 lastLiquidation
        )
    {
        Position memory p = _positions[positionKey];
        return (p.market, p.sizeE18, p.entryE8, p.realizedUsdE18, p.lastLiquidation);
    }

    /// @notice (C, E, IM, MM, N) of a position at the oracle's LATEST prices, whatever their age
    /// or bounds (a view for monitors; actions apply their own validity).
    function marginOf(bytes32 positionKey)
        external
        view
        returns (
            uint256 collateralUsdE18,
            int256 equityUsdE18,
            uint256 initialUsdE18,
            uint256 maintenanceUsdE18,
            uint256 notionalUsdE18
        )
    {
        Position memory p = _positions[positionKey];
        MarketParams memory m = _markets[p.market];
        uint256 mark;
        if (p.sizeE18 != 0) (mark,) = _price(m.oracleId, type(uint256).max, 0, type(uint256).max);
        Margin memory r = _margin(positionKey, p, m, mark, type(uint256).max);
        return (r.collateral, r.equity, r.initial, r.maintenance, r.notional);
    }

    function marketOf(bytes32 market)
        external
        view
        returns (MarketParams memory params, uint256 bufferPpm)
    {
        return (_markets[market], _buffers[market]);
    }

    function collateralConfigOf(uint64 srcChainId, bytes32 srcAsset)
        external
        view
        returns (CollateralConfig memory)
    {
        return _collateralConfigs[_pairKey(srcChainId, srcAsset)];
    }

    /// @notice Keys of the credited locks (remaining > 0) backing a position.
    function positionLocks(bytes32 positionKey) external view returns (bytes32[] memory) {
        return _positionLocks[positionKey];
    }
}
