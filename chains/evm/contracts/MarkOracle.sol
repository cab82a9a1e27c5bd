// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {AggregatorV3Interface} from
    "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {IPyth} from "@pythnetwork/pyth-sdk-solidity/IPyth.sol";

/// @title MarkOracle
/// @notice A mark price that one bad source cannot move (DESIGN §3, docs/mark.md): per oracle
/// id, the median of several Chainlink and Pyth feeds that are fresh for the caller's operation
/// class, strictly inside bounds and (Pyth) confident enough, after dropping the ones that
/// deviate from that median; its move is capped against an EMA of the mark. Never fewer than
/// `minSources` (>= 2) sources: a single feed can never set the mark.
/// `orchestrator/risk/mark.py` mirrors `computeMark` exactly, integer for integer.
///
/// Rounding: normalising to 1e8 scales up exactly and floors when scaling down; an even median
/// floors the mean of the two middle prices; the cap's band is [ceil(ema*(1e6-cap)/1e6),
/// floor(ema*(1e6+cap)/1e6)]; an EMA step floors its magnitude (the EMA never passes the mark).
///
/// Gas: `getMark` over 3 sources (2 Chainlink + 1 Pyth, the packages' mocks) uses 82,341 gas
/// of execution (103,341 as a transaction, intrinsic included), mostly cold storage of the
/// feeds and of the configuration; the caller must offer about 180k, since every feed read
/// needs its full READ_GAS available (measured and printed by
/// tests/integration/evm/test_mark_oracle.py).
contract MarkOracle is AccessControl {
    /// Hard cap on sources per id: bounds the gas of a read (each source is one or two calls).
    uint256 public constant MAX_SOURCES = 8;
    uint256 private constant PPM = 1_000_000;
    /// Gas handed to one feed read (a Chainlink proxy or Pyth read costs 10-30k): a feed that
    /// burns more becomes Unreadable instead of starving the others.
    uint256 private constant READ_GAS = 100_000;
    /// What a read needs left before its call: READ_GAS survives the 63/64 rule plus the
    /// call's own cost, so a caller's gas limit can never make a feed look unreadable.
    uint256 private constant READ_GAS_NEEDED = READ_GAS * 64 / 63 + 5_000;

    enum SourceKind {
        Chainlink,
        Pyth
    }

    /// Why a source did or did not count, in the order the checks run (first failure wins;
    /// Deviation is judged last, among the otherwise valid ones).
    enum Reason {
        Ok,
        Stale,
        Future,
        Bound,
        Confidence,
        Deviation,
        Unreadable,
        NonPositive
    }

    struct Source {
        SourceKind kind;
        address feed; // AggregatorV3Interface or IPyth
        bytes32 pythId; // Pyth price id; zero for Chainlink
    }

    /// All ppm are parts per million (1_000_000 = 100%); bounds are exclusive, in 1e8.
    struct Params {
        uint8 minSources; // >= 2, <= MAX_SOURCES
        uint32 maxDeviationPpm; // (0, 1e6]: drop |p - median| * 1e6 > this * median
        uint32 maxConfPpm; // (0, 1e6]: Pyth valid iff conf * 1e6 <= this * price
        uint32 emaCapPpm; // [0, 1e6): 0 = no cap
        uint32 emaAlphaPpm; // (0, 1e6]: weight of the new mark in an EMA step
        uint32 pokeMaxAge; // > 0: the max age `poke` reads with (the liquidation one)
        uint128 minPriceE8; // > 0
        uint128 maxPriceE8; // > minPriceE8
    }

    /// One source as read: Chainlink answers carry `expo = -decimals()` and `conf = 0`.
    struct Reading {
        SourceKind kind;
        bool readable; // false: the read reverted or returned malformed data
        int256 answer;
        uint64 conf;
        int32 expo;
        uint256 time; // updatedAt / publishTime
    }

    struct MarkResult {
        uint256 markE8; // after the EMA cap
        uint256 medianE8; // the same before the cap (equal when the cap does not bind)
        uint64 publishTime; // oldest publish time among the sources used
        uint256 validSources; // sources used (valid and within the deviation)
        uint256[] pricesE8; // per source, normalised (0 when unreadable or non-positive)
        Reason[] reasons; // per source
    }

    struct SourceState {
        uint256 priceE8;
        uint256 time;
        Reason reason;
    }

    struct Ema {
        uint128 emaE8; // 0 = not seeded
        uint64 lastPoke; // block number of the last poke (one poke per block)
    }

    mapping(bytes32 id => Params) private _params;
    mapping(bytes32 id => Source[]) private _sources;
    mapping(bytes32 id => Ema) private _ema;

    event MarkConfigured(bytes32 indexed id, Params params, Source[] sources);
    event EmaUpdated(bytes32 indexed id, uint256 markE8, uint256 emaE8, uint64 publishTime);

    error ZeroAddress();
    error UnknownOracle(bytes32 id);
    error TooFewSources(bytes32 id, uint256 valid, uint256 min);
    error MinSourcesBelowTwo(uint256 minSources);
    error FewerSourcesThanMin(uint256 sources, uint256 minSources);
    error TooManySources(uint256 sources, uint256 max);
    error ZeroFeedAddress(uint256 index);
    error ZeroPythId(uint256 index);
    error DuplicateSource(uint256 index);
    error InvalidBounds(uint256 minPriceE8, uint256 maxPriceE8);
    error ParamOutOfRange(string name, uint256 value);
    error PokeTooSoon(bytes32 id, uint64 lastPokeBlock);
    error ReadGasTooLow(uint256 gasLeft, uint256 needed);

    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ----------------------------------------------------------------- configuration

    /// @notice Set the sources and parameters of `id`. Resets its EMA: the cap is off until
    /// the next `poke` seeds it again (an EMA of other sources or bounds would mislead it).
    function configure(bytes32 id, Source[] calldata list, Params calldata p)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        validateParams(p);
        uint256 n = list.length;
        if (n < p.minSources) revert FewerSourcesThanMin(n, p.minSources);
        if (n > MAX_SOURCES) revert TooManySources(n, MAX_SOURCES);
        for (uint256 i; i < n; ++i) {
            Source calldata s = list[i];
            if (s.feed == address(0)) revert ZeroFeedAddress(i);
            if (s.kind == SourceKind.Pyth && s.pythId == bytes32(0)) revert ZeroPythId(i);
            // SECURITY: one feed listed twice would count twice toward minSources.
            for (uint256 j; j < i; ++j) {
                Source calldata t = list[j];
                if (t.kind == s.kind && t.feed == s.feed
                        && (s.kind == SourceKind.Chainlink || t.pythId == s.pythId)) {
                    revert DuplicateSource(i);
                }
            }
        }
        _params[id] = p;
        delete _sources[id];
        for (uint256 i; i < n; ++i) {
            _sources[id].push(list[i]);
        }
        delete _ema[id];
        emit MarkConfigured(id, p, list);
    }

    /// @notice Reverts with a typed error naming the first parameter out of range.
    function validateParams(Params memory p) public pure {
        if (p.minSources < 2) revert MinSourcesBelowTwo(p.minSources);
        if (p.minSources > MAX_SOURCES) revert TooManySources(p.minSources, MAX_SOURCES);
        if (p.maxDeviationPpm == 0 || p.maxDeviationPpm > PPM) {
            revert ParamOutOfRange("maxDeviationPpm", p.maxDeviationPpm);
        }
        if (p.maxConfPpm == 0 || p.maxConfPpm > PPM) {
            revert ParamOutOfRange("maxConfPpm", p.maxConfPpm);
        }
        if (p.emaCapPpm >= PPM) revert ParamOutOfRange("emaCapPpm", p.emaCapPpm);
        if (p.emaAlphaPpm == 0 || p.emaAlphaPpm > PPM) {
            revert ParamOutOfRange("emaAlphaPpm", p.emaAlphaPpm);
        }
        if (p.pokeMaxAge == 0) revert ParamOutOfRange("pokeMaxAge", p.pokeMaxAge);
        if (p.minPriceE8 == 0 || p.minPriceE8 >= p.maxPriceE8) {
            revert InvalidBounds(p.minPriceE8, p.maxPriceE8);
        }
    }

    function params(bytes32 id) external view returns (Params memory) {
        return _params[id];
    }

    function sources(bytes32 id) external view returns (Source[] memory) {
        return _sources[id];
    }

    function ema(bytes32 id) external view returns (uint128 emaE8, uint64 lastPokeBlock) {
        Ema memory e = _ema[id];
        return (e.emaE8, e.lastPoke);
    }

    // ----------------------------------------------------------------- reads

    /// @notice The mark of `id` for an operation whose freshness is `maxAge` seconds (the
    /// venue passes its user-action or its liquidation max age). `publishTime` is the oldest
    /// publish time among the sources used, so a reader checking age against it agrees.
    /// Reverts TooFewSources when fewer than `minSources` count; never on a bad feed.
    function getMark(bytes32 id, uint256 maxAge)
        external
        view
        returns (uint256 markE8, uint64 publishTime, uint256 validSources)
    {
        MarkResult memory r = _markOf(id, maxAge);
        return (r.markE8, r.publishTime, r.validSources);
    }

    /// @notice Every source of `id` as judged for `maxAge`, for operators and metrics; never
    /// reverts on bad sources (Deviation is judged against the median of the valid ones).
    function sourceStates(bytes32 id, uint256 maxAge)
        external
        view
        returns (SourceState[] memory states)
    {
        Params memory p = _configured(id);
        Reading[] memory readings = readSources(id);
        (uint256[] memory prices, Reason[] memory reasons,,) =
            _evaluate(readings, p, uint64(block.timestamp), maxAge);
        states = new SourceState[](readings.length);
        for (uint256 i; i < readings.length; ++i) {
            states[i] = SourceState(prices[i], readings[i].readable ? readings[i].time : 0,
                reasons[i]);
        }
    }

    /// @notice The raw readings of `id`'s sources, as `computeMark` takes them.
    function readSources(bytes32 id) public view returns (Reading[] memory readings) {
        Source[] storage list = _sources[id];
        readings = new Reading[](list.length);
        for (uint256 i; i < list.length; ++i) {
            Source storage s = list[i];
            readings[i] = s.kind == SourceKind.Chainlink ? _readChainlink(s.feed)
                : _readPyth(s.feed, s.pythId);
        }
    }

    /// @notice Permissionless: recompute the mark of `id` with `pokeMaxAge` and step the EMA
    /// toward it (the first poke seeds it). At most one poke per block (by number: a devnet can
    /// mine two blocks in one second), so repeated pokes
    /// in one block cannot drag the EMA.
    function poke(bytes32 id) external returns (uint256 markE8, uint256 emaE8) {
        Params memory p = _configured(id);
        Ema memory e = _ema[id];
        if (e.lastPoke >= block.number) revert PokeTooSoon(id, e.lastPoke);
        MarkResult memory r = _compute(id, readSources(id), p, uint64(block.timestamp),
            p.pokeMaxAge, e.emaE8);
        markE8 = r.markE8;
        emaE8 = emaStep(e.emaE8, markE8, p.emaAlphaPpm);
        // markE8 < maxPriceE8 < 2**128 and the EMA stays between marks: the cast is exact.
        _ema[id] = Ema(uint128(emaE8), uint64(block.number));
        emit EmaUpdated(id, markE8, emaE8, r.publishTime);
    }

    // ----------------------------------------------------------------- the pure rule

    /// @notice The rule itself, pure, for tests and off-chain mirrors: validates `p`, then
    /// behaves exactly as a read of `id` at time `now` with these readings and this EMA.
    function computeMark(bytes32 id, Reading[] memory readings, Params memory p, uint64 now_,
        uint256 maxAge, uint128 emaE8) public pure returns (MarkResult memory)
    {
        validateParams(p);
        return _compute(id, readings, p, now_, maxAge, emaE8);
    }

    /// @notice One EMA step: the first seeds `ema = mark`; after that
    /// `ema + (mark - ema) * alphaPpm / 1e6` with the step's magnitude floored.
    function emaStep(uint256 emaE8, uint256 markE8, uint256 alphaPpm)
        public
        pure
        returns (uint256)
    {
        if (emaE8 == 0) return markE8;
        if (markE8 >= emaE8) return emaE8 + (markE8 - emaE8) * alphaPpm / PPM;
        return emaE8 - (emaE8 - markE8) * alphaPpm / PPM;
    }

    /// @notice `value * 10**(8 + expo)`: exact when scaling up (saturating at 2**256 - 1,
    /// which no bound accepts), floored when scaling down.
    function normalizeE8(uint256 value, int256 expo) public pure returns (uint256) {
        if (value == 0) return 0;
        int256 k = 8 + expo;
        if (k >= 0) {
            if (k > 77) return type(uint256).max;
            uint256 scale = 10 ** uint256(k);
            if (value > type(uint256).max / scale) return type(uint256).max;
            return value * scale;
        }
        if (k < -77) return 0; // 10**78 > 2**256 > value
        return value / 10 ** uint256(-k);
    }

    // ----------------------------------------------------------------- internals

    function _configured(bytes32 id) private view returns (Params memory p) {
        p = _params[id];
        if (p.minSources == 0) revert UnknownOracle(id);
    }

    function _markOf(bytes32 id, uint256 maxAge) private view returns (MarkResult memory) {
        Params memory p = _configured(id);
        return _compute(id, readSources(id), p, uint64(block.timestamp), maxAge,
            _ema[id].emaE8);
    }

    function _compute(bytes32 id, Reading[] memory readings, Params memory p, uint64 now_,
        uint256 maxAge, uint128 emaE8) private pure returns (MarkResult memory r)
    {
        uint256 valid;
        (r.pricesE8, r.reasons, valid,) = _evaluate(readings, p, now_, maxAge);
        // `valid` counts what is left after the deviation drop, never more than before it:
        // one check covers both steps.
        if (valid < p.minSources) revert TooFewSources(id, valid, p.minSources);
        uint256[] memory kept = new uint256[](valid);
        uint256 n;
        uint256 oldest = type(uint256).max;
        for (uint256 i; i < readings.length; ++i) {
            if (r.reasons[i] != Reason.Ok) continue;
            kept[n++] = r.pricesE8[i];
            if (readings[i].time < oldest) oldest = readings[i].time;
        }
        r.medianE8 = _median(kept);
        r.markE8 = r.medianE8;
        if (p.emaCapPpm != 0 && emaE8 != 0) {
            uint256 lo = (uint256(emaE8) * (PPM - p.emaCapPpm) + PPM - 1) / PPM;
            uint256 hi = uint256(emaE8) * (PPM + p.emaCapPpm) / PPM;
            if (r.markE8 < lo) r.markE8 = lo;
            else if (r.markE8 > hi) r.markE8 = hi;
        }
        r.publishTime = uint64(oldest); // a used source's time is <= now_ < 2**64
        r.validSources = valid;
    }

    /// Per-source price and reason (Deviation against the median of the otherwise valid
    /// ones); `valid` counts those, `median` is theirs (0 when none).
    function _evaluate(Reading[] memory readings, Params memory p, uint64 now_, uint256 maxAge)
        private
        pure
        returns (uint256[] memory prices, Reason[] memory reasons, uint256 valid, uint256 median)
    {
        uint256 n = readings.length;
        prices = new uint256[](n);
        reasons = new Reason[](n);
        uint256[] memory vals = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            (prices[i], reasons[i]) = _check(readings[i], p, now_, maxAge);
            if (reasons[i] == Reason.Ok) vals[valid++] = prices[i];
        }
        if (valid == 0) return (prices, reasons, 0, 0);
        assembly ("memory-safe") {
            mstore(vals, valid)
        }
        median = _median(vals);
        for (uint256 i; i < n; ++i) {
            if (reasons[i] != Reason.Ok) continue;
            uint256 d = prices[i] > median ? prices[i] - median : median - prices[i];
            // prices are < maxPriceE8 < 2**128 here: no product overflows
            if (d * PPM > uint256(p.maxDeviationPpm) * median) {
                reasons[i] = Reason.Deviation;
                --valid;
            }
        }
    }

    function _check(Reading memory r, Params memory p, uint64 now_, uint256 maxAge)
        private
        pure
        returns (uint256 priceE8, Reason reason)
    {
        if (!r.readable) return (0, Reason.Unreadable);
        if (r.answer <= 0) return (0, Reason.NonPositive);
        priceE8 = normalizeE8(uint256(r.answer), r.expo);
        if (r.time == 0) return (priceE8, Reason.Stale);
        if (r.time > now_) return (priceE8, Reason.Future);
        if (now_ - r.time > maxAge) return (priceE8, Reason.Stale);
        if (priceE8 <= p.minPriceE8 || priceE8 >= p.maxPriceE8) return (priceE8, Reason.Bound);
        if (r.kind == SourceKind.Pyth) {
            // conf * 1e6 <= maxConfPpm * price  <=>  conf <= floor(maxConfPpm * price / 1e6)
            uint256 confE8 = normalizeE8(r.conf, r.expo);
            if (confE8 > uint256(p.maxConfPpm) * priceE8 / PPM) {
                return (priceE8, Reason.Confidence);
            }
        }
        return (priceE8, Reason.Ok);
    }

    /// Median of `vals` (sorted in place; n <= MAX_SOURCES): the middle one, or the floor of
    /// the mean of the two middle ones.
    function _median(uint256[] memory vals) private pure returns (uint256) {
        uint256 n = vals.length;
        for (uint256 i = 1; i < n; ++i) {
            uint256 v = vals[i];
            uint256 j = i;
            while (j > 0 && vals[j - 1] > v) {
                vals[j] = vals[j - 1];
                --j;
            }
            vals[j] = v;
        }
        if (n % 2 == 1) return vals[n / 2];
        return (vals[n / 2 - 1] + vals[n / 2]) / 2;
    }

    /// Reads go through a bounded staticcall and check the returned size and ranges: a
    /// feed that reverts, has no code, burns gas or returns malformed data is Unreadable
    /// (try/catch would not catch a decoding failure, which would brick every read).
    function _readChainlink(address feed) private view returns (Reading memory r) {
        r.kind = SourceKind.Chainlink;
        (bool ok, uint256[5] memory w) =
            _call(feed, abi.encodeCall(AggregatorV3Interface.latestRoundData, ()), 5);
        if (!ok) return r;
        (bool okDec, uint256[5] memory d) =
            _call(feed, abi.encodeCall(AggregatorV3Interface.decimals, ()), 1);
        if (!okDec || d[0] > type(uint8).max) return r;
        r.readable = true;
        r.answer = int256(w[1]);
        r.expo = -int32(uint32(d[0]));
        r.time = w[3];
    }

    function _readPyth(address feed, bytes32 pythId) private view returns (Reading memory r) {
        r.kind = SourceKind.Pyth;
        (bool ok, uint256[5] memory w) =
            _call(feed, abi.encodeCall(IPyth.getPriceUnsafe, (pythId)), 4);
        if (!ok) return r;
        int256 price = int256(w[0]);
        int256 expo = int256(w[2]);
        if (price < type(int64).min || price > type(int64).max || w[1] > type(uint64).max
                || expo < type(int32).min || expo > type(int32).max) {
            return r;
        }
        r.readable = true;
        r.answer = price;
        r.conf = uint64(w[1]);
        r.expo = int32(expo);
        r.time = w[3];
    }

    /// staticcall with READ_GAS, copying at most `words` words of the answer: ok iff the
    /// call succeeded and returned at least that much.
    /// SECURITY: reverts unless the full READ_GAS can be forwarded. Otherwise a caller could
    /// pick a gas limit that starves one chosen feed (the last read) and so choose which
    /// sources the median is taken over.
    function _call(address target, bytes memory data, uint256 words)
        private
        view
        returns (bool ok, uint256[5] memory out)
    {
        if (gasleft() < READ_GAS_NEEDED) revert ReadGasTooLow(gasleft(), READ_GAS_NEEDED);
        assembly ("memory-safe") {
            let size := mul(words, 0x20)
            ok := staticcall(READ_GAS, target, add(data, 0x20), mload(data), out, size)
            if lt(returndatasize(), size) { ok := 0 }
        }
    }
}
