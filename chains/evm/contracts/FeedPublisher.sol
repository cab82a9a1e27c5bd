// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MockV3Aggregator} from "@chainlink/contracts/src/v0.8/tests/MockV3Aggregator.sol";
import {MockPyth} from "@pythnetwork/pyth-sdk-solidity/MockPyth.sol";
import {MarkOracle} from "./MarkOracle.sol";

/// @title FeedPublisher
/// @notice The local devnet's feeder seam (docs/mark.md): one transaction writes one price per
/// source of an oracle id into the packages' own mocks (`MockV3Aggregator.updateRoundData`,
/// `MockPyth.updatePriceFeeds`), then pokes the `MarkOracle` so the mark's EMA and its
/// `EmaUpdated` history follow. Each source gets its own price and (Pyth) confidence, so a
/// feeder can make one source jump, freeze (price 0: that source is left as it is), sit on a
/// bound or report a wide confidence while the others stay honest.
///
/// On a real network the sources are Chainlink's and Pyth's own feeds and this contract is not
/// deployed; the venue reads only `MarkOracle`.
///
/// Time (I14): a publish time must be strictly after the id's last one and not after the
/// block's, so a replayed or pre-dated update can never roll a source back.
contract FeedPublisher is AccessControl {
    bytes32 public constant FEEDER_ROLE = keccak256("FEEDER_ROLE");
    /// The Pyth exponent published: prices and confidences are given in 1e8 already.
    int32 public constant PYTH_EXPO = -8;

    MarkOracle public immutable oracle;
    mapping(bytes32 id => uint64) public lastPublish;
    uint80 private _round;

    /// One publish: per source the price and confidence written (price 0: source untouched).
    event SourcesPublished(
        bytes32 indexed id, uint256[] pricesE8, uint64[] confsE8, uint64 publishTime
    );
    /// The mark could not be poked after a publish (e.g. TooFewSources): the EMA holds.
    event PokeSkipped(bytes32 indexed id, bytes reason);

    error ZeroAddress();
    error SourceCountMismatch(bytes32 id, uint256 given, uint256 configured);
    error PublishTimeNotIncreasing(bytes32 id, uint64 last, uint64 given);
    error PublishTimeInFuture(uint64 given, uint256 blockTime);
    error PriceTooLarge(uint256 index, uint256 priceE8);

    constructor(address admin, address feeder, MarkOracle oracle_) {
        if (admin == address(0) || feeder == address(0) || address(oracle_) == address(0)) {
            revert ZeroAddress();
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(FEEDER_ROLE, feeder);
        oracle = oracle_;
    }

    /// @notice Write `pricesE8[i]` (confidence `confsE8[i]`, Pyth only) into source i of `id`
    /// at `publishTime`, then poke the mark. The arrays follow `MarkOracle.sources(id)`.
    function publish(
        bytes32 id,
        uint256[] calldata pricesE8,
        uint64[] calldata confsE8,
        uint64 publishTime
    ) external onlyRole(FEEDER_ROLE) {
        MarkOracle.Source[] memory list = oracle.sources(id);
        if (list.length == 0 || pricesE8.length != list.length || confsE8.length != list.length) {
            revert SourceCountMismatch(id, pricesE8.length, list.length);
        }
        uint64 last = lastPublish[id];
        if (publishTime <= last) revert PublishTimeNotIncreasing(id, last, publishTime);
        if (publishTime > block.timestamp) revert PublishTimeInFuture(publishTime, block.timestamp);
        lastPublish[id] = publishTime;
        for (uint256 i; i < list.length; ++i) {
            uint256 price = pricesE8[i];
            if (price == 0) continue;
            // Both mocks hold signed 64-bit values at most (Pyth) or scale up (Chainlink).
            if (price > uint256(uint64(type(int64).max))) revert PriceTooLarge(i, price);
            if (list[i].kind == MarkOracle.SourceKind.Chainlink) {
                _chainlink(MockV3Aggregator(list[i].feed), price, publishTime);
            } else {
                _pyth(MockPyth(list[i].feed), list[i].pythId, price, confsE8[i], publishTime);
            }
        }
        emit SourcesPublished(id, pricesE8, confsE8, publishTime);
        _poke(id);
    }

    /// @dev Poke the mark. Only the oracle's verdicts on the sources (`TooFewSources`) or on
    /// the block (`PokeTooSoon`) are skipped; anything else (a starved read, out of gas)
    /// reverts the publish, so a gas estimate can never find a limit that drops the poke.
    function _poke(bytes32 id) private {
        try oracle.poke(id) {}
        catch (bytes memory reason) {
            bytes4 selector = reason.length >= 4 ? bytes4(reason) : bytes4(0);
            if (
                selector != MarkOracle.TooFewSources.selector
                    && selector != MarkOracle.PokeTooSoon.selector
            ) {
                assembly ("memory-safe") {
                    revert(add(reason, 32), mload(reason))
                }
            }
            emit PokeSkipped(id, reason);
        }
    }

    function _chainlink(MockV3Aggregator feed, uint256 priceE8, uint64 t) private {
        uint8 decimals = feed.decimals();
        // ROUNDING: exact when scaling up; floor for a feed with fewer than 8 decimals.
        uint256 answer = decimals >= 8 ? priceE8 * 10 ** (decimals - 8) : priceE8 / 10 ** (8 - decimals);
        feed.updateRoundData(++_round, int256(answer), t, t);
    }

    function _pyth(MockPyth feed, bytes32 pythId, uint256 priceE8, uint64 confE8, uint64 t)
        private
    {
        bytes[] memory data = new bytes[](1);
        int64 price = int64(uint64(priceE8));
        data[0] = feed.createPriceFeedUpdateData(pythId, price, confE8, PYTH_EXPO, price, confE8,
            t, t);
        feed.updatePriceFeeds{value: feed.getUpdateFee(data)}(data);
    }

    /// @notice Pays Pyth update fees when a mock charges one (the devnet's charges none).
    receive() external payable {}
}
