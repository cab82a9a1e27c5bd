// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title CollateralVault
/// @notice Custodies collateral that backs one isolated position on a venue chain (DESIGN §2.1).
/// A lock is identified off chain by (srcChainId, vault, nonce). The amount recorded and emitted
/// is the vault's measured balance delta, never the caller's argument, so fee-on-transfer or
/// rebasing tokens cannot over-credit a position.
/// @dev Settlement (release / seize, EIP-712 quorum of attesters, DESIGN §2.4 and §2.6) lands in
/// a later change. Its storage is reserved below the lock storage; do not reorder either block.
contract CollateralVault is Ownable2Step, ReentrancyGuard, Pausable {
    using SafeERC20 for IERC20;

    /// @notice One lock. `settled` is the sum of released and seized amounts; the settlement
    /// path keeps `settled <= amount` for every lock.
    struct LockRecord {
        address owner;
        address asset;
        uint256 amount;
        uint256 settled;
    }

    // ----- lock storage ---------------------------------------------------------------------
    mapping(address asset => bool) private _registered;
    /// @notice Sum of measured lock amounts per asset (never decreases; see released/seized).
    mapping(address asset => uint256) public lockedTotal;
    mapping(uint256 nonce => LockRecord) private _locks;
    /// @notice Nonce of the newest lock; 0 before the first. Strictly increasing.
    uint256 public lastNonce;

    // ----- settlement storage (written by `settle`, added in a later change) ----------------
    /// @notice Per asset: amounts returned to owners / seized for losses, fees or liquidation.
    /// Invariant kept by `settle`: releasedTotal + seizedTotal <= lockedTotal (DESIGN §2.7).
    mapping(address asset => uint256) public releasedTotal;
    mapping(address asset => uint256) public seizedTotal;
    // Reserved for `settle`: consumed settlement ids, the attester set (index => signers,
    // threshold) and its grace window. Signatures are EIP-712 `Settlement` structs whose domain
    // is (this chain id, this vault); signers strictly increasing, m distinct members.

    event AssetRegistered(address indexed asset);
    event Locked(
        uint256 indexed nonce,
        address indexed owner,
        address indexed asset,
        uint256 amount,
        bytes32 positionKey,
        uint64 dstChainId,
        address dstVenue,
        address beneficiary
    );

    error ZeroAddress();
    error NoCode(address account);
    error AssetAlreadyRegistered(address asset);
    error UnregisteredAsset(address asset);
    error ZeroAmount();
    error ZeroPositionKey();
    error ZeroDstChainId();
    error ZeroDstVenue();
    error ZeroBeneficiary();
    error NothingReceived();

    constructor(address initialOwner) Ownable(initialOwner) {}

    /// @notice Accept `asset` as collateral. Only contracts with code; registration is final.
    function registerAsset(address asset) external onlyOwner {
        if (asset == address(0)) revert ZeroAddress();
        if (asset.code.length == 0) revert NoCode(asset);
        if (_registered[asset]) revert AssetAlreadyRegistered(asset);
        _registered[asset] = true;
        emit AssetRegistered(asset);
    }

    function isRegistered(address asset) external view returns (bool) {
        return _registered[asset];
    }

    function lockOf(uint256 nonce) external view returns (LockRecord memory) {
        return _locks[nonce];
    }

    function pause() external onlyOwner {
        _pause();
    }

    function unpause() external onlyOwner {
        _unpause();
    }

    /// @notice Pull `amount` of `asset` from the caller and lock it for `positionKey` on
    /// (`dstChainId`, `dstVenue`), to be traded by `beneficiary` there.
    /// @return nonce The lock's per-vault nonce (first lock is 1).
    function lock(
        address asset,
        uint256 amount,
        bytes32 positionKey,
        uint64 dstChainId,
        address dstVenue,
        address beneficiary
    ) external nonReentrant whenNotPaused returns (uint256 nonce) {
        if (amount == 0) revert ZeroAmount();
        if (!_registered[asset]) revert UnregisteredAsset(asset);
        if (positionKey == bytes32(0)) revert ZeroPositionKey();
        if (dstChainId == 0) revert ZeroDstChainId();
        if (dstVenue == address(0)) revert ZeroDstVenue();
        if (beneficiary == address(0)) revert ZeroBeneficiary();

        // SECURITY: credit what arrived, not what was asked (fee-on-transfer, rebasing tokens).
        IERC20 token = IERC20(asset);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 measured = token.balanceOf(address(this)) - before;
        if (measured == 0) revert NothingReceived();

        nonce = ++lastNonce;
        _locks[nonce] = LockRecord({owner: msg.sender, asset: asset, amount: measured, settled: 0});
        lockedTotal[asset] += measured;
        emit Locked(nonce, msg.sender, asset, measured, positionKey, dstChainId, dstVenue, beneficiary);
    }
}
