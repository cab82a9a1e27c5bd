// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SignedMath} from "@openzeppelin/contracts/utils/math/SignedMath.sol";

import {MarkOracle} from "./MarkOracle.sol";

/// @title VenueCore
/// @notice Storage, types, events, errors and the integer risk rules shared by
/// `IsolatedMarginVenue` and its trading module `VenueRiskModule`.
///
/// The venue is split in two contracts to stay under the 24 KB code size limit (EIP-170): the
/// venue (credits, releases, owner settings, views) and the module (open, increase, reduce,
/// close, liquidate). The venue creates the module in its constructor (immutable address) and
/// runs the module's code with DELEGATECALL, so the module reads and writes the venue's storage
/// and its events are emitted by the venue's address. Both inherit this contract FIRST, so its
/// state variables sit at the same slots (from slot 0) in both; nothing else may declare storage
/// in the module. Append storage only.
///
/// Fixed-point rules (DESIGN §3; the Python risk core implements exactly the same integers):
///  * USD values `usdE18` (1 USD = 1e18). Prices `priceE8` from `MarkOracle`: USD per ONE whole
///    unit of the market's base asset or of the collateral asset. Sizes `sizeE18` are signed
///    (long > 0). Rates are ppm (1e6 = 100 %).
///  * Collateral value C = sum over the position's collateral entries (srcChainId, srcAsset) of
///    floor(floor(amount18 * priceE8 / 1e8) * (1e6 - haircutPpm) / 1e6), where amount18 is
///    `collateralOf(positionKey, srcChainId, srcAsset)`; entries with amount18 == 0 are skipped
///    (no price is read for them).
///  * Notional N = ceil(|size| * mark / 1e8).
///  * PnL = floor(size * (mark - entry) / 1e8), floor toward minus infinity.
///  * Equity E = C + realized + PnL, where `realized` is the position's equity ledger: realized
///    PnL of reductions and partial liquidations minus every fee charged (taker and liquidation
///    fees). This is the brief's "E = C + pnl - fees accrued" with fees booked in `realized`.
///  * IM = ceil(N * imrPpm / 1e6); MM = ceil(N * (mmrPpm + bufferPpm) / 1e6). With no open trade
///    N = IM = MM = 0 and E = C + realized.
///  * Liquidatable iff MM > 0 and E < MM at a valid price (liquidation max age).
///  * A price is valid for an operation class iff block.timestamp - publishTime <= max age of the
///    class (user actions: `maxAgeUserS`; liquidations: the longer `maxAgeLiqS`) and
///    minPriceE8 < price < maxPriceE8 (a price AT or beyond a bound is invalid, ORA-01): the
///    market's bounds for the mark, the lane's bounds for a collateral price. Collateral prices
///    use the position's market's max age for the class.
abstract contract VenueCore {
    /// @notice Gas a batch item (credit or liquidation) must have before it starts, about twice
    /// the costliest one: a batch too short of gas for its next item reverts whole instead of
    /// letting the item run out of gas inside its frame and be skipped. So an estimate is exact
    /// for the whole batch and a sender can add a small margin, which lets blocks pack more
    /// batches (a block packs transactions by their gas limit).
    uint256 public constant BATCH_ITEM_GAS = 500_000;

    uint8 public constant KIND_RELEASE = 1;
    uint8 public constant KIND_SEIZE = 2;
    /// @notice Bound on the locks backing one position, so a liquidation's loops stay bounded.
    uint256 public constant MAX_POSITION_LOCKS = 16;
    uint256 internal constant PPM = 1e6;
    /// Tag of the transient per-transaction mark cache (`_warmPrice`, `_price`).
    bytes32 private constant MARK_CACHE_TAG = keccak256("bulkhead.venue.markCache");
    uint256 internal constant PRICE_ONE = 1e8;
    /// @dev |size| must stay below 2^127 (int128 storage); with prices below 2^128 every product
    /// size * price fits in 256 bits.
    uint256 internal constant SIZE_LIMIT = 2 ** 127;

    enum LockStatus {
        None,
        Queued,
        Credited
    }

    /// @notice One consumed lock. `remaining` is the raw source amount still credited (or, while
    /// queued, waiting); releases and seizures lower it.
    struct LockCredit {
        bytes32 positionKey;
        bytes32 srcAsset;
        bytes32 srcOwner;
        uint128 remaining;
        uint64 srcChainId;
        LockStatus status;
        uint8 decimals;
        uint48 releaseAt;
    }

    struct LaneAsset {
        bool registered;
        uint8 decimals;
        uint128 ceiling;
        uint128 outstanding;
    }

    struct RateLimit {
        uint128 cap;
        uint128 largeThreshold;
        uint64 delay;
        uint64 windowStart;
        uint128 used;
    }

    /// @notice Owner-set parameters of one market (the buffer is set apart by the risk role).
    /// @param oracleId the MarkOracle id of the mark price.
    /// @param imrPpm initial margin rate; @param mmrPpm maintenance margin rate, with
    /// 0 < mmrPpm and mmrPpm + bufferMaxPpm <= imrPpm <= 1e6, so MM <= IM always holds: a position
    /// that meets IM is never liquidatable at the same price.
    /// @param takerFeePpm fee on the traded notional of open, increase, reduce and close.
    /// @param liqFeePpm, liqFeeCapUsdE18 liquidation fee on the closed notional, capped.
    /// @param maxAgeUserS, maxAgeLiqS max price age (s) for user actions and, strictly longer,
    /// for liquidations. @param minPriceE8, maxPriceE8 a mark at or beyond a bound is invalid.
    /// @param stepMaxPpm largest fraction one partial liquidation may close.
    /// @param fullRatioPpm E * 1e6 < MM * fullRatioPpm forces a full liquidation.
    /// @param dustNotionalUsdE18 a partial that would leave a smaller notional becomes full.
    /// @param cooldownS minimum time between a liquidation and the next non-forced one.
    /// @param bufferMaxPpm the largest buffer the risk role may set.
    struct MarketParams {
        bytes32 oracleId;
        uint32 imrPpm;
        uint32 mmrPpm;
        uint32 takerFeePpm;
        uint32 liqFeePpm;
        uint128 liqFeeCapUsdE18;
        uint32 maxAgeUserS;
        uint32 maxAgeLiqS;
        uint128 minPriceE8;
        uint128 maxPriceE8;
        uint32 stepMaxPpm;
        uint32 fullRatioPpm;
        uint128 dustNotionalUsdE18;
        uint32 cooldownS;
        uint32 bufferMaxPpm;
    }

    /// @notice Oracle market, haircut (< 1e6) and exclusive price bounds of one collateral lane
    /// (srcChainId, srcAsset). oracleId 0: not priced (a position holding it cannot be valued).
    struct CollateralConfig {
        bytes32 oracleId;
        uint32 haircutPpm;
        uint112 minPriceE8;
        uint112 maxPriceE8;
    }

    /// @notice Argument of `setCollateral`: a lane and its configuration.
    struct CollateralLane {
        uint64 srcChainId;
        bytes32 srcAsset;
        CollateralConfig config;
    }

    struct Position {
        bytes32 market;
        int128 sizeE18;
        uint128 entryE8;
        int256 realizedUsdE18;
        uint64 lastLiquidation;
    }

    /// @notice Where a credited lock came from: what a settlement request must name.
    struct LockRef {
        bytes32 srcVault;
        bytes32 lockId;
    }

    /// @notice An owner's automated top-up rule for one position (DESIGN §3, "Automated
    /// rebalancing"); see `VenueRiskModule.topUp`. `sourceKey` is the owner's reserve position
    /// (free collateral: credited locks on a position with no open trade); `thresholdPpm` the
    /// margin ratio E/MM (ppm, > 1e6) below which collateral may be moved in; `maxUsdE18` the
    /// cumulative value the rule may move, `usedUsdE18` what it has moved so far.
    struct TopUpRule {
        bytes32 sourceKey;
        uint32 thresholdPpm;
        uint256 maxUsdE18;
        uint256 usedUsdE18;
    }

    struct Margin {
        uint256 collateral;
        int256 equity;
        uint256 initial;
        uint256 maintenance;
        uint256 notional;
    }

    // ----- credit storage (slot order is shared with the module: append only) ---------------
    mapping(bytes32 laneAssetKey => LaneAsset) internal _laneAssets;
    mapping(bytes32 rateKey => RateLimit) internal _rateLimits;
    mapping(bytes32 lockKey => LockCredit) internal _credits;
    mapping(bytes32 positionKey => address) internal _owners;
    mapping(bytes32 positionKey => mapping(uint64 srcChainId => mapping(bytes32 srcAsset => uint256)))
        internal _collateral18;
    /// @notice Settlement requests made so far; the last one's sequence number.
    uint256 public settlementSequence;

    // ----- trading storage ------------------------------------------------------------------
    /// @notice The MarkOracle the venue reads (owner-set).
    address public oracle;
    /// @notice The RISK role: the only account that may set markets' buffers (owner-set).
    address public riskUpdater;
    /// @notice Insurance fund balance, usdE18 (an accounting number): liquidation fees in,
    /// owner top-ups in, shortfalls out. It may go negative: the deficit is recorded.
    int256 public insuranceFund;
    /// @notice Taker fees charged so far, usdE18 (an accounting number).
    uint256 public feePool;
    mapping(bytes32 market => MarketParams) internal _markets;
    mapping(bytes32 market => uint256) internal _buffers;
    mapping(bytes32 rateKey => CollateralConfig) internal _collateralConfigs;
    mapping(bytes32 positionKey => Position) internal _positions;
    /// @dev Lock keys with remaining > 0 credited to a position (order changes on removal).
    mapping(bytes32 positionKey => bytes32[]) internal _positionLocks;
    mapping(bytes32 lockKey => LockRef) internal _lockRefs;

    // ----- top-up storage -------------------------------------------------------------------
    /// @dev The top-up rule of a target position (sourceKey 0: none).
    mapping(bytes32 positionKey => TopUpRule) internal _topUpRules;

    event SettlementRequested(
        bytes32 indexed settlementId,
        uint64 indexed srcChainId,
        bytes32 srcVault,
        bytes32 indexed lockId,
        bytes32 recipient,
        uint256 amount,
        uint8 kind
    );
    /// @notice One open, increase, reduce or close at the oracle mark.
    /// @param sizeDeltaE18 signed change of the size; @param realizedPnlUsdE18 PnL realized by
    /// this trade (before the fee); @param sizeE18, entryE8 the position afterwards.
    event Traded(
        bytes32 indexed positionKey,
        bytes32 indexed market,
        int256 sizeDeltaE18,
        uint256 priceE8,
        uint256 feeUsdE18,
        int256 realizedPnlUsdE18,
        int256 sizeE18,
        uint256 entryE8
    );
    /// @param closedSizeE18 signed size closed (same sign as the position).
    /// @param planTick publishTime of the oracle price the liquidation used: a keeper's plan
    /// built on that tick is (positionKey, planTick).
    event Liquidated(
        bytes32 indexed positionKey,
        bytes32 indexed market,
        int256 closedSizeE18,
        uint256 markE8,
        uint256 feeUsdE18,
        bool full,
        uint64 planTick
    );
    /// @notice A loss beyond the position's own collateral, taken from the insurance fund.
    event Shortfall(bytes32 indexed positionKey, uint256 usdE18);
    /// @notice One item of `liquidateBatch` that was not liquidated (it no longer qualifies, or
    /// failed for another reason): `reason` is its revert data. It left no state behind.
    event LiquidationSkipped(uint256 indexed index, bytes32 indexed positionKey, bytes reason);

    /// @notice A batch entry point was called by someone other than the contract itself.
    error OnlySelf();
    error LiquidationBatchMismatch(uint256 positions, uint256 fractions);
    error BatchOutOfGas(uint256 index, uint256 gasLeft);
    event OracleSet(address indexed oracle);
    event RiskUpdaterSet(address indexed riskUpdater);
    event MarketSet(bytes32 indexed market, MarketParams params);
    event BufferSet(bytes32 indexed market, uint256 bufferPpm);
    event CollateralConfigSet(
        uint64 indexed srcChainId, bytes32 indexed srcAsset, CollateralConfig config
    );
    event InsuranceFunded(uint256 usdE18, int256 balance);
    /// @notice The owner of both positions registered (or replaced) a top-up rule; the moved
    /// total starts again at 0.
    event TopUpRuleSet(
        bytes32 indexed positionKey, bytes32 indexed sourceKey, uint32 thresholdPpm, uint256 maxUsdE18
    );
    event TopUpRuleCleared(bytes32 indexed positionKey);
    /// @notice The whole lock `lockKey` moved from the reserve `sourceKey` to `positionKey`:
    /// `amount18` its credit in 18 decimals, `valueUsdE18` what it counted against the rule.
    event ToppedUp(
        bytes32 indexed positionKey,
        bytes32 indexed sourceKey,
        bytes32 indexed lockKey,
        uint256 amount18,
        uint256 valueUsdE18
    );

    error NotPositionOwner(bytes32 positionKey, address account);
    error InsufficientMargin(int256 equity, uint256 initialMargin);
    error NotLiquidatable(int256 equity, uint256 maintenanceMargin);
    error OracleNotSet();
    error PriceUnavailable(bytes32 oracleId);
    error StalePrice(bytes32 oracleId, uint64 publishTime, uint256 maxAge);
    error PriceOutOfBounds(bytes32 oracleId, uint256 priceE8);
    error CollateralNotPriced(uint64 srcChainId, bytes32 srcAsset);
    error UnknownMarket(bytes32 market);
    error PositionOpen(bytes32 positionKey);
    error NoOpenTrade(bytes32 positionKey);
    error ZeroSize();
    error SizeTooLarge(uint256 sizeE18);
    error ReduceExceedsSize(uint256 sizeE18, uint256 deltaE18);
    error InvalidFraction(uint256 fractionPpm);
    error StepTooLarge(uint256 fractionPpm, uint256 stepMaxPpm);
    error LiquidationCooldown(uint256 until);
    error LiquidationPending(bytes32 positionKey, uint256 until);
    error ZeroAddress();
    error InvalidMarketParams();
    error InvalidHaircut(uint32 haircutPpm);
    error NotRiskUpdater(address account);
    error BufferAboveMax(uint256 bufferPpm, uint256 maxPpm);
    error NotCredited(bytes32 key);
    error LockNotInPosition(bytes32 key, bytes32 positionKey);
    error TooManyLocks(bytes32 positionKey, uint256 max);
    error InvalidTopUpRule();
    error NoTopUpRule(bytes32 positionKey);
    /// @notice The position is at or above its rule's threshold: E * 1e6 >= MM * thresholdPpm.
    error TopUpNotNeeded(int256 equity, uint256 maintenanceMargin, uint256 thresholdPpm);
    error TopUpAboveMax(uint256 usedUsdE18, uint256 valueUsdE18, uint256 maxUsdE18);

    // ----- keys -----------------------------------------------------------------------------

    function _pairKey(uint64 srcChainId, bytes32 srcAsset) internal pure returns (bytes32) {
        return keccak256(abi.encode(srcChainId, srcAsset));
    }

    function _laneAssetKey(uint64 srcChainId, bytes32 srcVault, bytes32 srcAsset)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(srcChainId, srcVault, srcAsset));
    }

    // ----- prices ---------------------------------------------------------------------------

    /// @dev Transient slot of the mark of (oracle, id, maxAge) read earlier in this transaction.
    function _markSlot(address o, bytes32 oracleId, uint256 maxAge)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(MARK_CACHE_TAG, o, oracleId, maxAge));
    }

    /// @dev Read the mark of `oracleId` for `maxAge` into this transaction's transient cache
    /// (nothing when it is there, or when the oracle refuses: `_price` then reads again and
    /// reverts with the oracle's reason). Within one transaction the oracle's sources, the
    /// block time and the oracle address cannot change under the venue (it calls nothing that
    /// writes them), so a cached mark is exactly what a fresh read would return; a batch of
    /// liquidations on one market reads its mark and each collateral price once, not per item.
    function _warmPrice(bytes32 oracleId, uint256 maxAge) internal {
        address o = oracle;
        if (o == address(0) || oracleId == bytes32(0)) return;
        bytes32 slot = _markSlot(o, oracleId, maxAge);
        uint256 v;
        assembly ("memory-safe") {
            v := tload(slot)
        }
        if (v != 0) return;
        try MarkOracle(o).getMark(oracleId, maxAge) returns (uint256 p, uint64 t, uint256) {
            if (p == 0 || p >= 2 ** 192 || t == 0) return;
            v = (p << 64) | t;
            assembly ("memory-safe") {
                tstore(slot, v)
            }
        } catch {}
    }

    /// @dev The mark of `oracleId` for an operation whose freshness is `maxAge` (the median of
    /// the MarkOracle's valid sources, docs/mark.md), strictly inside (minPrice, maxPrice).
    /// Views pass maxAge = type(uint256).max and no bounds. The oracle's own refusals
    /// (`TooFewSources`, `ReadGasTooLow`) are passed on unchanged, so callers see why. A mark
    /// already read in this transaction (`_warmPrice`) is taken from the transient cache.
    function _price(bytes32 oracleId, uint256 maxAge, uint256 minPrice, uint256 maxPrice)
        internal
        view
        returns (uint256 priceE8, uint64 publishTime)
    {
        address o = oracle;
        if (o == address(0)) revert OracleNotSet();
        bytes32 slot = _markSlot(o, oracleId, maxAge);
        uint256 cached;
        assembly ("memory-safe") {
            cached := tload(slot)
        }
        if (cached != 0) {
            (priceE8, publishTime) = (cached >> 64, uint64(cached));
        } else {
            try MarkOracle(o).getMark(oracleId, maxAge) returns (uint256 p, uint64 t, uint256) {
                (priceE8, publishTime) = (p, t);
            } catch (bytes memory reason) {
                if (reason.length < 4) revert PriceUnavailable(oracleId);
                assembly ("memory-safe") {
                    revert(add(reason, 32), mload(reason))
                }
            }
        }
        // INVARIANT (I9, ORA-01): stale or bound-stuck prices are never used. The oracle has
        // already judged each source by maxAge; the venue re-checks the mark it got.
        if (block.timestamp - publishTime > maxAge) revert StalePrice(oracleId, publishTime, maxAge);
        if (priceE8 <= minPrice || priceE8 >= maxPrice) revert PriceOutOfBounds(oracleId, priceE8);
    }

    /// @dev The mark of `m` for an operation class (`maxAge`), bounds applied.
    function _mark(MarketParams memory m, uint256 maxAge)
        internal
        view
        returns (uint256 priceE8, uint64 publishTime)
    {
        return _price(m.oracleId, maxAge, m.minPriceE8, m.maxPriceE8);
    }

    /// @dev Price of one collateral lane, valid for `maxAge` and inside the lane's bounds (views
    /// pass maxAge = type(uint256).max and `bounded` false).
    function _collateralPrice(uint64 srcChainId, bytes32 srcAsset, uint256 maxAge, bool bounded)
        internal
        view
        returns (uint256 priceE8, uint32 haircutPpm)
    {
        CollateralConfig memory cfg = _collateralConfigs[_pairKey(srcChainId, srcAsset)];
        if (cfg.oracleId == bytes32(0)) revert CollateralNotPriced(srcChainId, srcAsset);
        (priceE8,) = bounded
            ? _price(cfg.oracleId, maxAge, cfg.minPriceE8, cfg.maxPriceE8)
            : _price(cfg.oracleId, maxAge, 0, type(uint256).max);
        haircutPpm = cfg.haircutPpm;
    }

    /// @dev Haircut value of `amount18` at `priceE8`: the collateral rule for one entry.
    function _haircutValue(uint256 amount18, uint256 priceE8, uint256 haircutPpm)
        internal
        pure
        returns (uint256)
    {
        // ROUNDING: both divisions floor (collateral is valued in the protocol's favour).
        return Math.mulDiv(Math.mulDiv(amount18, priceE8, PRICE_ONE), PPM - haircutPpm, PPM);
    }

    // ----- the risk rules -------------------------------------------------------------------

    /// @dev floor(a / b) toward minus infinity, b > 0 (Solidity's `/` truncates toward zero).
    function _floorDiv(int256 a, int256 b) internal pure returns (int256 q) {
        q = a / b;
        if (a % b != 0 && a < 0) q -= 1;
    }

    /// @dev Collateral value C (usdE18) of a position: one term per distinct (srcChainId,
    /// srcAsset) entry of its locks, with a non-zero amount.
    function _collateralValue(bytes32 positionKey, uint256 maxAge)
        internal
        view
        returns (uint256 value)
    {
        bytes32[] storage locks = _positionLocks[positionKey];
        uint256 n = locks.length;
        bytes32[] memory seen = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            LockCredit storage c = _credits[locks[i]];
            bytes32 pair = _pairKey(c.srcChainId, c.srcAsset);
            seen[i] = pair;
            if (!_seenBefore(seen, i, pair)) value += _entryValue(positionKey, c, maxAge);
        }
    }

    function _seenBefore(bytes32[] memory seen, uint256 end, bytes32 pair)
        private
        pure
        returns (bool)
    {
        for (uint256 j = 0; j < end; ++j) {
            if (seen[j] == pair) return true;
        }
        return false;
    }

    /// @dev floor(floor(amount18 * price / 1e8) * (1e6 - haircut) / 1e6) of the (srcChainId,
    /// srcAsset) entry of lock `c` in the position (0 without reading a price when empty).
    function _entryValue(bytes32 positionKey, LockCredit storage c, uint256 maxAge)
        private
        view
        returns (uint256)
    {
        (uint64 chainId, bytes32 asset) = (c.srcChainId, c.srcAsset);
        uint256 amount18 = _collateral18[positionKey][chainId][asset];
        if (amount18 == 0) return 0;
        (uint256 price, uint32 haircut) =
            _collateralPrice(chainId, asset, maxAge, maxAge != type(uint256).max);
        return _haircutValue(amount18, price, haircut);
    }

    /// @dev (C, E, IM, MM, N) of `p` at `mark`, collateral priced for `maxAge`.
    function _margin(
        bytes32 positionKey,
        Position memory p,
        MarketParams memory m,
        uint256 mark,
        uint256 maxAge
    ) internal view returns (Margin memory r) {
        r.collateral = _collateralValue(positionKey, maxAge);
        r.equity = SafeCast.toInt256(r.collateral) + p.realizedUsdE18;
        int256 size = p.sizeE18;
        if (size != 0) {
            // ROUNDING: notional and margins round up, PnL floors toward minus infinity.
            r.notional = Math.ceilDiv(SignedMath.abs(size) * mark, PRICE_ONE);
            int256 move = int256(mark) - int256(uint256(p.entryE8));
            r.equity += _floorDiv(size * move, int256(PRICE_ONE));
            r.initial = Math.ceilDiv(r.notional * m.imrPpm, PPM);
            r.maintenance = Math.ceilDiv(r.notional * (m.mmrPpm + _buffers[p.market]), PPM);
        }
    }

    /// @dev I7: E >= IM for the position as stored now, at user-action validity. With no open
    /// trade and realized >= 0 there is nothing to check (IM = 0 and C >= 0), so no price is read.
    function _requireInitialMargin(bytes32 positionKey) internal view {
        Position memory p = _positions[positionKey];
        if (p.sizeE18 == 0 && p.realizedUsdE18 >= 0) return;
        MarketParams memory m = _markets[p.market];
        uint256 mark;
        if (p.sizeE18 != 0) (mark,) = _mark(m, m.maxAgeUserS);
        Margin memory r = _margin(positionKey, p, m, mark, m.maxAgeUserS);
        if (r.equity < SafeCast.toInt256(r.initial)) revert InsufficientMargin(r.equity, r.initial);
    }

    // ----- the way back ---------------------------------------------------------------------

    /// @dev Book a release or seizure of `amount` source units of the lock `c` (bytes32
    /// (srcVault, lockId)) and emit the request the attesters sign. Seizures name no recipient
    /// (the source vault pays its seizeRecipient); releases name the source-chain owner.
    function _requestSettlement(
        bytes32 positionKey,
        LockCredit storage c,
        bytes32 srcVault,
        bytes32 lockId,
        uint256 amount,
        uint8 kind
    ) internal returns (bytes32 settlementId) {
        uint64 chainId = c.srcChainId;
        bytes32 asset = c.srcAsset;
        c.remaining -= uint128(amount);
        _collateral18[positionKey][chainId][asset] -= amount * 10 ** (18 - c.decimals);
        _laneAssets[_laneAssetKey(chainId, srcVault, asset)].outstanding -= uint128(amount);
        uint256 sequence = ++settlementSequence;
        settlementId = keccak256(
            abi.encode(block.chainid, address(this), chainId, srcVault, lockId, sequence)
        );
        emit SettlementRequested(
            settlementId, chainId, srcVault, lockId,
            kind == KIND_RELEASE ? c.srcOwner : bytes32(0), amount, kind
        );
    }

    /// @dev Drop `locks[index]` (swap with the last, pop).
    function _removeLockAt(bytes32[] storage locks, uint256 index) internal {
        uint256 last = locks.length - 1;
        if (index != last) locks[index] = locks[last];
        locks.pop();
    }

    /// @dev List `key` on a position, at most MAX_POSITION_LOCKS locks per position.
    function _addLock(bytes32 positionKey, bytes32 key) internal {
        bytes32[] storage locks = _positionLocks[positionKey];
        if (locks.length >= MAX_POSITION_LOCKS) revert TooManyLocks(positionKey, MAX_POSITION_LOCKS);
        locks.push(key);
    }

    /// @dev Drop `key` from a position's list (no-op if it is not listed).
    function _removeLock(bytes32 positionKey, bytes32 key) internal {
        bytes32[] storage locks = _positionLocks[positionKey];
        for (uint256 i = 0; i < locks.length; ++i) {
            if (locks[i] == key) return _removeLockAt(locks, i);
        }
    }
}
