// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SignedMath} from "@openzeppelin/contracts/utils/math/SignedMath.sol";

import {VenueCore} from "./VenueCore.sol";

/// @title VenueRiskModule
/// @notice Trading, liquidation and risk settings of `IsolatedMarginVenue`, run ONLY by
/// DELEGATECALL from the venue (which creates it and forwards `open`, `increase`, `reduce`,
/// `close`, `liquidate` and the settings, after its own `onlyOwner` / `whenNotPaused` checks), so
/// every read and write below is the venue's storage and every event is the venue's. Called
/// directly it refuses (`OnlyDelegated`). Rules: see `VenueCore` (fixed point) and each function.
///
/// Isolation (I6): every function touches exactly one position: its size, entry, realized
/// ledger and its own locks. Collateral is never moved between positions, except by `topUp`,
/// which moves a whole lock between two positions of the same owner under the rule that owner
/// registered; the only shared numbers are the fee pool and the insurance fund (accounting),
/// which no position's margin reads.
contract VenueRiskModule is VenueCore {
    address private immutable _self = address(this);

    error OnlyDelegated();

    modifier onlyDelegated() {
        if (address(this) == _self) revert OnlyDelegated();
        _;
    }

    // ----- risk settings (the venue checks onlyOwner first) ------------------------------

    function setOracle(address oracle_) external onlyDelegated {
        if (oracle_ == address(0)) revert ZeroAddress();
        oracle = oracle_;
        emit OracleSet(oracle_);
    }

    /// @notice Name the RISK role: the account that pushes markets' volatility buffers.
    function setRiskUpdater(address account) external onlyDelegated {
        riskUpdater = account;
        emit RiskUpdaterSet(account);
    }

    /// @notice Create or change a market (see `VenueCore.MarketParams` for the constraints).
    /// Its buffer is kept, clamped to the new bufferMaxPpm.
    function setMarket(bytes32 market, MarketParams calldata m) external onlyDelegated {
        uint256 maintenanceMax = uint256(m.mmrPpm) + m.bufferMaxPpm;
        if (
            market == bytes32(0) || m.oracleId == bytes32(0) || m.mmrPpm == 0
                || maintenanceMax > m.imrPpm || maintenanceMax >= PPM || m.imrPpm > PPM
                || m.takerFeePpm >= PPM || m.liqFeePpm >= m.mmrPpm || m.stepMaxPpm == 0
                || m.stepMaxPpm > PPM || m.fullRatioPpm == 0 || m.fullRatioPpm > PPM
                || m.maxAgeUserS == 0 || m.maxAgeUserS >= m.maxAgeLiqS || m.minPriceE8 == 0
                || m.minPriceE8 >= m.maxPriceE8
        ) revert InvalidMarketParams();
        _markets[market] = m;
        if (_buffers[market] > m.bufferMaxPpm) {
            _buffers[market] = m.bufferMaxPpm;
            emit BufferSet(market, m.bufferMaxPpm);
        }
        emit MarketSet(market, m);
    }

    /// @notice RISK role: set a market's maintenance buffer (EWMA volatility), <= bufferMaxPpm.
    function setBuffer(bytes32 market, uint256 bufferPpm) external onlyDelegated {
        if (msg.sender != riskUpdater) revert NotRiskUpdater(msg.sender);
        MarketParams storage m = _markets[market];
        if (m.oracleId == bytes32(0)) revert UnknownMarket(market);
        if (bufferPpm > m.bufferMaxPpm) revert BufferAboveMax(bufferPpm, m.bufferMaxPpm);
        _buffers[market] = bufferPpm;
        emit BufferSet(market, bufferPpm);
    }

    /// @notice Oracle market, haircut (< 1e6) and exclusive price bounds (0 < min < max) of the
    /// collateral lane (srcChainId, srcAsset); oracle id 0 unprices it (positions holding it can
    /// then not be valued).
    function setCollateral(CollateralLane calldata lane) external onlyDelegated {
        CollateralConfig calldata cfg = lane.config;
        if (cfg.haircutPpm >= PPM) revert InvalidHaircut(cfg.haircutPpm);
        bool badBounds = cfg.minPriceE8 == 0 || cfg.minPriceE8 >= cfg.maxPriceE8;
        if (cfg.oracleId != bytes32(0) && badBounds) revert InvalidMarketParams();
        _collateralConfigs[_pairKey(lane.srcChainId, lane.srcAsset)] = cfg;
        emit CollateralConfigSet(lane.srcChainId, lane.srcAsset, cfg);
    }

    /// @notice Add to the insurance fund's balance (accounting, usdE18).
    function fundInsurance(uint256 usdE18) external onlyDelegated {
        insuranceFund += SafeCast.toInt256(usdE18);
        emit InsuranceFunded(usdE18, insuranceFund);
    }

    // ----- user actions (owner of the position only, user-action price validity) ------------

    /// @notice Open a trade on a flat position at the oracle mark: size `sizeE18` (long > 0).
    /// Charges the taker fee fee = ceil(ceil(|size| * mark / 1e8) * takerFeePpm / 1e6) into the
    /// fee pool (booked to `realized`); entry = mark. Then requires E >= IM (I7), else
    /// `InsufficientMargin(E, IM)`.
    function open(bytes32 positionKey, bytes32 market, int256 sizeE18) external onlyDelegated {
        _onlyOwner(positionKey);
        Position storage p = _positions[positionKey];
        if (p.sizeE18 != 0) revert PositionOpen(positionKey);
        MarketParams memory m = _markets[market];
        if (m.oracleId == bytes32(0)) revert UnknownMarket(market);
        uint256 size = _checkedSize(SignedMath.abs(sizeE18));
        (uint256 mark,) = _mark(m, m.maxAgeUserS);
        uint256 fee = _fee(size, mark, m.takerFeePpm);
        p.market = market;
        p.sizeE18 = int128(sizeE18);
        p.entryE8 = uint128(mark); // mark < maxPriceE8 <= 2^128 - 1
        p.realizedUsdE18 -= int256(fee);
        p.lastLiquidation = 0; // a new trade starts a new liquidation sequence
        feePool += fee;
        _requireInitialMargin(positionKey);
        emit Traded(positionKey, market, sizeE18, mark, fee, 0, sizeE18, mark);
    }

    /// @notice Add `deltaE18` to the size on the same side, at the mark. The entry becomes the
    /// size-weighted average, rounded against the trader: up for a long, down for a short.
    /// Taker fee as in `open`; then E >= IM (I7).
    function increase(bytes32 positionKey, uint256 deltaE18) external onlyDelegated {
        _onlyOwner(positionKey);
        Position storage p = _positions[positionKey];
        int256 size = p.sizeE18;
        if (size == 0) revert NoOpenTrade(positionKey);
        if (deltaE18 == 0) revert ZeroSize();
        uint256 abs = SignedMath.abs(size);
        uint256 total = _checkedSize(abs + deltaE18);
        bytes32 market = p.market;
        MarketParams memory m = _markets[market];
        (uint256 mark,) = _mark(m, m.maxAgeUserS);
        uint256 weighted = abs * p.entryE8 + deltaE18 * mark;
        // ROUNDING: against the trader (a higher entry hurts a long, a lower one a short).
        uint256 entry = size > 0 ? Math.ceilDiv(weighted, total) : weighted / total;
        uint256 fee = _fee(deltaE18, mark, m.takerFeePpm);
        int256 newSize = size > 0 ? int256(total) : -int256(total);
        p.sizeE18 = int128(newSize);
        p.entryE8 = uint128(entry);
        p.realizedUsdE18 -= int256(fee);
        feePool += fee;
        _requireInitialMargin(positionKey);
        emit Traded(positionKey, market, newSize - size, mark, fee, 0, newSize, entry);
    }

    /// @notice Close `deltaE18` (0 < delta <= |size|) of the trade at the mark. Realized PnL of
    /// the closed part, floor(closed * (mark - entry) / 1e8), minus the taker fee, is booked to
    /// `realized`. No margin check: reducing never adds risk. Closing the whole size also
    /// settles the booked loss (see `close`).
    function reduce(bytes32 positionKey, uint256 deltaE18) external onlyDelegated {
        _reduce(positionKey, deltaE18);
    }

    /// @notice Close the whole trade at the mark (as `reduce`), then settle: a negative
    /// `realized` (losses and fees) is seized from the position's own locks, rounded up in
    /// source units, never more than a lock's remaining, and `realized` becomes 0; whatever the
    /// locks cannot cover is a `Shortfall` taken from the insurance fund. The remaining
    /// collateral stays credited (release it with `requestRelease`, or trade again). A positive
    /// `realized` stays on the ledger (it counts in E of later trades; it is not collateral).
    function close(bytes32 positionKey) external onlyDelegated {
        _reduce(positionKey, SignedMath.abs(_positions[positionKey].sizeE18));
    }

    function _reduce(bytes32 positionKey, uint256 deltaE18) private {
        _onlyOwner(positionKey);
        Position storage p = _positions[positionKey];
        int256 size = p.sizeE18;
        if (size == 0) revert NoOpenTrade(positionKey);
        uint256 abs = SignedMath.abs(size);
        if (deltaE18 == 0 || deltaE18 > abs) revert ReduceExceedsSize(abs, deltaE18);
        MarketParams memory m = _markets[p.market];
        (uint256 mark,) = _mark(m, m.maxAgeUserS);
        bool flat = deltaE18 == abs;
        _book(positionKey, p, size > 0 ? int256(deltaE18) : -int256(deltaE18), mark, m, flat);
        if (flat) _settleLoss(positionKey, m.maxAgeUserS, false);
    }

    /// @dev Book the reduction of `closed` (signed like the size) at `mark` with the taker fee.
    function _book(
        bytes32 positionKey,
        Position storage p,
        int256 closed,
        uint256 mark,
        MarketParams memory m,
        bool flat
    ) private {
        int256 pnl = _pnl(closed, mark, p.entryE8);
        uint256 fee = _fee(SignedMath.abs(closed), mark, m.takerFeePpm);
        int256 size = p.sizeE18 - closed;
        p.realizedUsdE18 += pnl - int256(fee);
        p.sizeE18 = int128(size);
        if (flat) p.entryE8 = 0;
        feePool += fee;
        emit Traded(positionKey, p.market, -closed, mark, fee, pnl, size, p.entryE8);
    }

    // ----- liquidation (anyone) ---------------------------------------------------------------

    /// @notice Liquidate `fractionPpm` of a position (keepers). Checked here, on chain: MM > 0
    /// and E < MM at a price valid for liquidations (`maxAgeLiqS`, bounds), else
    /// `NotLiquidatable(E, MM)`. Plan, in this order:
    ///  1. forced full if E * 1e6 < MM * fullRatioPpm (deep: no cooldown, no step limit);
    ///  2. otherwise the cooldown holds: no liquidation before lastLiquidation + cooldownS
    ///     (`LiquidationCooldown(until)`) — one liquidation per trigger;
    ///  3. fractionPpm == 1e6 is a full liquidation; any other fraction must be in
    ///     1..stepMaxPpm (`StepTooLarge`); the closed size is ceil(|size| * fraction / 1e6);
    ///     if the remainder is 0 or its notional ceil(rest * mark / 1e8) < dustNotionalUsdE18,
    ///     the liquidation becomes full.
    /// Then, once per call: PnL of the closed size is realized, floor(closed * (mark - entry) /
    /// 1e8); the fee due, min(ceil(ceil(closed * mark / 1e8) * liqFeePpm / 1e6),
    /// liqFeeCapUsdE18), is taken from equity only: fee = min(due, max(E', 0)) with E' the
    /// equity before the fee (C + realized + PnL of the rest at the mark); what E' cannot pay is
    /// waived, never added to a loss. The fee is booked to `realized` and paid into the
    /// insurance fund; lastLiquidation = now. A partial stops there (its losses stay booked in
    /// `realized`, seized at close or at a full liquidation). A full liquidation then settles
    /// (see `_settleLoss`): the loss L = -realized (fees + realized losses) is seized from the
    /// position's own locks, valued like collateral (haircut, liquidation validity), rounded up
    /// in source units and never more than a lock's remaining; every lock's remainder is
    /// released to its source owner; the loss beyond the collateral, -E after the close, is
    /// taken from the insurance fund and emitted as `Shortfall(positionKey, usdE18)`.
    function liquidate(bytes32 positionKey, uint256 fractionPpm) external onlyDelegated {
        _liquidate(positionKey, fractionPpm);
    }

    /// @notice Liquidate many positions in one transaction. Items are independent: each runs in
    /// its own frame and re-checks E < MM at the oracle exactly as `liquidate` does; an item that
    /// no longer qualifies (or fails for any reason) is skipped with
    /// `LiquidationSkipped(index, positionKey, revert data)`, leaves no state behind and never
    /// reverts the others. Keepers order the batch most underwater first.
    /// @return done number of positions liquidated.
    function liquidateBatch(bytes32[] calldata positionKeys, uint256[] calldata fractionsPpm)
        external
        onlyDelegated
        returns (uint256 done)
    {
        if (positionKeys.length != fractionsPpm.length) {
            revert LiquidationBatchMismatch(positionKeys.length, fractionsPpm.length);
        }
        for (uint256 i = 0; i < positionKeys.length; ++i) {
            uint256 left = gasleft();
            if (left < BATCH_ITEM_GAS) revert BatchOutOfGas(i, left);
            // The venue's own entry (this code runs as the venue): one frame per item.
            (bool ok, bytes memory reason) = address(this).call(
                abi.encodeCall(this.liquidateFromBatch, (positionKeys[i], fractionsPpm[i]))
            );
            if (ok) ++done;
            else emit LiquidationSkipped(i, positionKeys[i], reason);
        }
    }

    /// @dev One batch item, reached through the venue's own external call.
    function liquidateFromBatch(bytes32 positionKey, uint256 fractionPpm) external onlyDelegated {
        if (msg.sender != address(this)) revert OnlySelf();
        _liquidate(positionKey, fractionPpm);
    }

    function _liquidate(bytes32 positionKey, uint256 fractionPpm) private {
        Position memory p = _positions[positionKey];
        if (p.sizeE18 == 0) revert NoOpenTrade(positionKey);
        if (fractionPpm == 0 || fractionPpm > PPM) revert InvalidFraction(fractionPpm);
        MarketParams memory m = _markets[p.market];
        _warmPrices(positionKey, m, m.maxAgeLiqS);
        (uint256 mark, uint64 tick) = _mark(m, m.maxAgeLiqS);
        Margin memory r = _margin(positionKey, p, m, mark, m.maxAgeLiqS);
        // INVARIANT (I8): liquidate iff E < MM at a valid price.
        if (r.maintenance == 0 || r.equity >= SafeCast.toInt256(r.maintenance)) {
            revert NotLiquidatable(r.equity, r.maintenance);
        }
        uint256 closeAbs = _plan(p, m, r, mark, fractionPpm);
        _execute(positionKey, p, m, r.collateral, mark, tick, closeAbs);
    }

    /// @dev Every price this liquidation reads (its market's mark, each collateral lane's),
    /// once per transaction (`VenueCore._warmPrice`): a batch's later items find them cached.
    function _warmPrices(bytes32 positionKey, MarketParams memory m, uint256 maxAge) private {
        _warmPrice(m.oracleId, maxAge);
        bytes32[] storage locks = _positionLocks[positionKey];
        for (uint256 i = 0; i < locks.length; ++i) {
            LockCredit storage c = _credits[locks[i]];
            _warmPrice(_collateralConfigs[_pairKey(c.srcChainId, c.srcAsset)].oracleId, maxAge);
        }
    }

    function _plan(
        Position memory p,
        MarketParams memory m,
        Margin memory r,
        uint256 mark,
        uint256 fractionPpm
    ) private view returns (uint256) {
        uint256 abs = SignedMath.abs(p.sizeE18);
        if (r.equity * int256(PPM) < SafeCast.toInt256(r.maintenance * m.fullRatioPpm)) return abs;
        uint256 until = uint256(p.lastLiquidation) + m.cooldownS;
        if (p.lastLiquidation != 0 && block.timestamp < until) revert LiquidationCooldown(until);
        if (fractionPpm == PPM) return abs;
        if (fractionPpm > m.stepMaxPpm) revert StepTooLarge(fractionPpm, m.stepMaxPpm);
        uint256 closeAbs = Math.ceilDiv(abs * fractionPpm, PPM);
        uint256 rest = abs - closeAbs;
        if (rest == 0 || Math.ceilDiv(rest * mark, PRICE_ONE) < m.dustNotionalUsdE18) return abs;
        return closeAbs;
    }

    function _execute(
        bytes32 positionKey,
        Position memory p,
        MarketParams memory m,
        uint256 collateral,
        uint256 mark,
        uint64 tick,
        uint256 closeAbs
    ) private {
        bool full = closeAbs == SignedMath.abs(p.sizeE18);
        int256 closed = p.sizeE18 > 0 ? int256(closeAbs) : -int256(closeAbs);
        int256 realized = p.realizedUsdE18 + _pnl(closed, mark, p.entryE8);
        // The fee is taken from equity only, never beyond it: E before the fee (the closed
        // part realized, the rest at the mark); what it cannot pay is waived.
        int256 beforeFee =
            SafeCast.toInt256(collateral) + realized + _pnl(p.sizeE18 - closed, mark, p.entryE8);
        uint256 fee = Math.min(_fee(closeAbs, mark, m.liqFeePpm), m.liqFeeCapUsdE18);
        if (beforeFee <= 0) fee = 0;
        else if (fee > uint256(beforeFee)) fee = uint256(beforeFee);
        Position storage s = _positions[positionKey];
        s.realizedUsdE18 = realized - int256(fee);
        s.sizeE18 = int128(p.sizeE18 - closed);
        if (full) s.entryE8 = 0;
        s.lastLiquidation = uint64(block.timestamp);
        insuranceFund += int256(fee);
        emit Liquidated(positionKey, p.market, closed, mark, fee, full, tick);
        if (full) _settleLoss(positionKey, m.maxAgeLiqS, true);
    }

    // ----- automated top-up (DESIGN §3 "Automated rebalancing") --------------------------------

    /// @notice Register (or replace) the top-up rule of `positionKey`: the caller must own both
    /// `positionKey` and the reserve `sourceKey` (a different key); `thresholdPpm` > 1e6 is the
    /// margin ratio E/MM below which collateral may be moved in; `maxUsdE18` > 0 caps the value
    /// moved under this rule in total. Replacing a rule starts its moved total again at 0 (the
    /// owner grants a fresh budget). Else `NotPositionOwner` / `InvalidTopUpRule`.
    function setTopUpRule(
        bytes32 positionKey,
        bytes32 sourceKey,
        uint32 thresholdPpm,
        uint256 maxUsdE18
    ) external onlyDelegated {
        _onlyOwner(positionKey);
        _onlyOwner(sourceKey);
        if (positionKey == sourceKey || thresholdPpm <= PPM || maxUsdE18 == 0) {
            revert InvalidTopUpRule();
        }
        _topUpRules[positionKey] = TopUpRule(sourceKey, thresholdPpm, maxUsdE18, 0);
        emit TopUpRuleSet(positionKey, sourceKey, thresholdPpm, maxUsdE18);
    }

    /// @notice Remove the top-up rule of `positionKey` (its owner; `NoTopUpRule` if none).
    function clearTopUpRule(bytes32 positionKey) external onlyDelegated {
        _onlyOwner(positionKey);
        if (_topUpRules[positionKey].sourceKey == bytes32(0)) revert NoTopUpRule(positionKey);
        delete _topUpRules[positionKey];
        emit TopUpRuleCleared(positionKey);
    }

    /// @notice Move the WHOLE credited lock `lockKey` from the rule's reserve position into
    /// `positionKey` (anyone may call: it only executes the owner's standing instruction; the
    /// caller picks the lock, and the rule's cap bounds what any caller can move). A whole lock
    /// moves, never part of one, so each lock still backs exactly one position.
    /// Checked, in this order:
    ///  1. `positionKey` has a rule (`NoTopUpRule`);
    ///  2. the reserve has no open trade (`PositionOpen(sourceKey)`): only free collateral moves;
    ///  3. the lock is credited (`NotCredited`) and backs the reserve (`LockNotInPosition(lock,
    ///     sourceKey)`) — a second call for a lock already moved is refused here;
    ///  4. the target has an open trade (`NoOpenTrade`) and no liquidation is pending, i.e. not
    ///     within cooldownS of its last liquidation (`LiquidationPending`);
    ///  5. at prices valid for liquidations (`maxAgeLiqS`, bounds): E * 1e6 < MM * thresholdPpm
    ///     (`TopUpNotNeeded(E, MM, threshold)`); a position already below MM may be topped up;
    ///  6. the lock's value, ceil(amount18 * price / 1e8) at the same validity (no haircut,
    ///     rounded UP so the cap is never exceeded), keeps the rule's total within maxUsdE18
    ///     (`TopUpAboveMax(used, value, max)`); the total grows by it;
    ///  7. the target holds fewer than MAX_POSITION_LOCKS locks (`TooManyLocks`).
    /// Effects: the lock leaves the reserve's list and joins the target's; its 18-decimal amount
    /// moves between the two positions' (srcChainId, srcAsset) entries; `LockCredit.positionKey`
    /// becomes the target. Source lane, vault, lock id, source owner, remaining and the lane's
    /// outstanding credit are unchanged, so releases and seizures of the lock settle to the same
    /// source chain, vault and owner (per lock, as always). The target's E rises by the lock's
    /// haircut value. Finally the reserve must still meet the release rule (E >= IM at user
    /// prices; nothing to check when flat with a non-negative ledger, the normal case).
    /// Emits `ToppedUp(positionKey, sourceKey, lockKey, amount18, valueUsdE18)`.
    function topUp(bytes32 positionKey, bytes32 lockKey) external onlyDelegated {
        TopUpRule storage rule = _topUpRules[positionKey];
        bytes32 sourceKey = rule.sourceKey;
        if (sourceKey == bytes32(0)) revert NoTopUpRule(positionKey);
        if (_positions[sourceKey].sizeE18 != 0) revert PositionOpen(sourceKey);
        LockCredit storage c = _credits[lockKey];
        if (c.status != LockStatus.Credited) revert NotCredited(lockKey);
        if (c.positionKey != sourceKey) revert LockNotInPosition(lockKey, sourceKey);
        uint256 maxAge = _requireBelowThreshold(positionKey, rule.thresholdPpm);
        uint256 amount18 = uint256(c.remaining) * 10 ** (18 - c.decimals);
        (uint256 price,) = _collateralPrice(c.srcChainId, c.srcAsset, maxAge, true);
        // ROUNDING: up, so the value counted against the owner's cap is never understated.
        uint256 value = Math.mulDiv(amount18, price, PRICE_ONE, Math.Rounding.Ceil);
        uint256 used = rule.usedUsdE18;
        if (used + value > rule.maxUsdE18) revert TopUpAboveMax(used, value, rule.maxUsdE18);
        rule.usedUsdE18 = used + value;
        // INVARIANT (I1): only the position a lock backs changes; its lane, remaining amount,
        // source owner and the lane's outstanding credit stay, so settlement stays per lock.
        _removeLock(sourceKey, lockKey);
        _addLock(positionKey, lockKey);
        _collateral18[sourceKey][c.srcChainId][c.srcAsset] -= amount18;
        _collateral18[positionKey][c.srcChainId][c.srcAsset] += amount18;
        c.positionKey = positionKey;
        emit ToppedUp(positionKey, sourceKey, lockKey, amount18, value);
        _requireInitialMargin(sourceKey);
    }

    /// @dev Steps 4 and 5 of `topUp`; returns the liquidation max age of the target's market.
    function _requireBelowThreshold(bytes32 positionKey, uint256 thresholdPpm)
        private
        view
        returns (uint256)
    {
        Position memory p = _positions[positionKey];
        if (p.sizeE18 == 0) revert NoOpenTrade(positionKey);
        MarketParams memory m = _markets[p.market];
        uint256 until = uint256(p.lastLiquidation) + m.cooldownS;
        if (p.lastLiquidation != 0 && block.timestamp < until) {
            revert LiquidationPending(positionKey, until);
        }
        (uint256 mark,) = _mark(m, m.maxAgeLiqS);
        Margin memory r = _margin(positionKey, p, m, mark, m.maxAgeLiqS);
        if (r.equity * int256(PPM) >= SafeCast.toInt256(r.maintenance * thresholdPpm)) {
            revert TopUpNotNeeded(r.equity, r.maintenance, thresholdPpm);
        }
        return m.maxAgeLiqS;
    }

    // ----- settlement of a flat position ------------------------------------------------------

    /// @dev Settle a flat position's ledger: the loss L = -realized (if any) is seized from its
    /// own locks, valued like collateral (haircut applied). If L >= C (E <= 0), every lock is
    /// seized and Shortfall(L - C) = -E goes to the insurance fund. Otherwise each lock, last
    /// listed first, gives the fewest source units whose haircut value covers what is left,
    /// ceil(ceil(ceil(L * 1e6 / (1e6 - haircut)) * 1e8 / price) / 10^(18 - decimals)), at most
    /// its remaining (a capped lock covers its haircut value, floored). A residue of the per-lock
    /// rounding (a few wei at most) is recorded as shortfall too. With `releaseRest`, what
    /// remains of every lock is released to its source owner. A negative ledger ends at 0.
    function _settleLoss(bytes32 positionKey, uint256 maxAge, bool releaseRest) private {
        Position storage p = _positions[positionKey];
        int256 realized = p.realizedUsdE18;
        uint256 loss = realized < 0 ? uint256(-realized) : 0;
        if (loss == 0 && !releaseRest) return;
        uint256 shortfall;
        bool seizeAll;
        if (loss != 0) {
            uint256 collateral = _collateralValue(positionKey, maxAge);
            if (collateral <= loss) (seizeAll, shortfall) = (true, loss - collateral);
        }
        bytes32[] storage locks = _positionLocks[positionKey];
        for (uint256 i = locks.length; i > 0; --i) {
            bytes32 key = locks[i - 1];
            LockCredit storage c = _credits[key];
            LockRef memory ref = _lockRefs[key];
            uint256 seized;
            if (seizeAll) seized = c.remaining;
            else if (loss != 0) (seized, loss) = _seizable(c, loss, maxAge);
            if (seized != 0) {
                _requestSettlement(positionKey, c, ref.srcVault, ref.lockId, seized, KIND_SEIZE);
            }
            uint256 rest = c.remaining;
            if (releaseRest && rest != 0) {
                _requestSettlement(positionKey, c, ref.srcVault, ref.lockId, rest, KIND_RELEASE);
                rest = 0;
            }
            if (rest == 0) _removeLockAt(locks, i - 1);
        }
        if (!seizeAll) shortfall = loss;
        if (shortfall != 0) {
            // INVARIANT (I6, LIQ-01): a loss beyond this position's collateral goes to the
            // insurance fund and is recorded; it never touches another position.
            insuranceFund -= SafeCast.toInt256(shortfall);
            emit Shortfall(positionKey, shortfall);
        }
        if (realized < 0) p.realizedUsdE18 = 0;
    }

    /// @dev Source units of lock `c` whose haircut value covers `loss` (usdE18), and the loss
    /// left uncovered.
    function _seizable(LockCredit storage c, uint256 loss, uint256 maxAge)
        private
        view
        returns (uint256 seized, uint256 left)
    {
        (uint256 price, uint32 haircut) = _collateralPrice(c.srcChainId, c.srcAsset, maxAge, true);
        uint256 scale = 10 ** (18 - c.decimals);
        // ROUNDING: up, in the protocol's favour (the seized amount's haircut value, computed
        // with the collateral rule's floors, is at least `loss`).
        uint256 gross = Math.mulDiv(loss, PPM, PPM - haircut, Math.Rounding.Ceil);
        uint256 need = Math.ceilDiv(Math.mulDiv(gross, PRICE_ONE, price, Math.Rounding.Ceil), scale);
        uint256 remaining = c.remaining;
        if (need <= remaining) return (need, 0);
        uint256 covered = _haircutValue(remaining * scale, price, haircut);
        return (remaining, covered >= loss ? 0 : loss - covered);
    }

    // ----- helpers ----------------------------------------------------------------------------

    function _onlyOwner(bytes32 positionKey) private view {
        if (_owners[positionKey] != msg.sender) revert NotPositionOwner(positionKey, msg.sender);
    }

    function _checkedSize(uint256 abs) private pure returns (uint256) {
        if (abs == 0) revert ZeroSize();
        if (abs >= SIZE_LIMIT) revert SizeTooLarge(abs);
        return abs;
    }

    /// @dev ceil(ceil(size * mark / 1e8) * ratePpm / 1e6): fees round up.
    function _fee(uint256 size, uint256 mark, uint256 ratePpm) private pure returns (uint256) {
        return Math.ceilDiv(Math.ceilDiv(size * mark, PRICE_ONE) * ratePpm, PPM);
    }

    /// @dev floor(closed * (mark - entry) / 1e8), toward minus infinity.
    function _pnl(int256 closed, uint256 mark, uint256 entry) private pure returns (int256) {
        return _floorDiv(closed * (int256(mark) - int256(entry)), int256(PRICE_ONE));
    }
}
