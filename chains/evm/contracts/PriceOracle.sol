// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title PriceOracle
/// @notice Push oracle on the venue chain: one (priceE8, publishTime) per market (DESIGN §3).
/// Feeders may only move time forward and never past the block, so a replayed or
/// pre-dated update cannot roll a price back. Staleness is judged by readers (max age).
contract PriceOracle is AccessControl {
    bytes32 public constant FEEDER_ROLE = keccak256("FEEDER_ROLE");

    struct Price {
        uint256 priceE8;
        uint64 publishTime;
    }

    mapping(bytes32 market => Price) private _prices;

    event PriceUpdated(bytes32 indexed market, uint256 priceE8, uint64 publishTime);

    error ZeroAddress();
    error ZeroPrice();
    error PublishTimeNotIncreasing(bytes32 market, uint64 last, uint64 given);
    error PublishTimeInFuture(uint64 given, uint256 blockTime);
    error NoPrice(bytes32 market);

    constructor(address admin, address feeder) {
        if (admin == address(0) || feeder == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(FEEDER_ROLE, feeder);
    }

    function setPrice(bytes32 market, uint256 priceE8, uint64 publishTime)
        external
        onlyRole(FEEDER_ROLE)
    {
        if (priceE8 == 0) revert ZeroPrice();
        uint64 last = _prices[market].publishTime;
        if (publishTime <= last) revert PublishTimeNotIncreasing(market, last, publishTime);
        if (publishTime > block.timestamp) revert PublishTimeInFuture(publishTime, block.timestamp);
        _prices[market] = Price({priceE8: priceE8, publishTime: publishTime});
        emit PriceUpdated(market, priceE8, publishTime);
    }

    /// @notice Latest price of `market`; reverts with NoPrice if none was ever published,
    /// so a reader can never mistake "unknown" for a zero price.
    function getPrice(bytes32 market) external view returns (uint256 priceE8, uint64 publishTime) {
        Price memory p = _prices[market];
        if (p.publishTime == 0) revert NoPrice(market);
        return (p.priceE8, p.publishTime);
    }
}
