// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FeeToken
/// @notice Devnet-only fee-on-transfer ERC20 (6 decimals): every transfer burns `feeBps` basis
/// points, so the receiver gets less than the argument. Exercises the vault's measured-delta
/// rule (reliability case SRC-01). Anyone may mint.
contract FeeToken is ERC20 {
    uint16 public immutable feeBps;

    error FeeTooHigh(uint16 feeBps);

    constructor(string memory name_, string memory symbol_, uint16 feeBps_) ERC20(name_, symbol_) {
        if (feeBps_ > 10_000) revert FeeTooHigh(feeBps_);
        feeBps = feeBps_;
    }

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0) || feeBps == 0) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = (value * feeBps) / 10_000; // rounds down: the fee never exceeds the rate
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
