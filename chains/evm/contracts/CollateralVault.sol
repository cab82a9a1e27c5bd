// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {AttesterRegistry} from "./AttesterRegistry.sol";

/// @title CollateralVault
/// @notice Custodies collateral that backs one isolated position on a venue chain (DESIGN §2.1).
/// A lock is identified off chain by (srcChainId, vault, nonce). The amount recorded and emitted
/// is the vault's measured balance delta, never the caller's argument, so fee-on-transfer or
/// rebasing tokens cannot over-credit a position.
/// Settlement (DESIGN §2.4, §2.6): `settle` executes a `Settlement` signed by a quorum of this
/// vault's own stored attester set, EIP-712 domain "Bulkhead" / "1" / this chain / this vault.
/// kind 1 (release) pays the lock's owner; kind 2 (seize) pays `seizeRecipient`. A lock may be
/// settled in parts; `settled` never exceeds the measured amount. Each settlementId executes once.
/// @dev Storage order: lock storage, then settlement storage, then the registry's. Append only.
contract CollateralVault is AttesterRegistry, EIP712, ReentrancyGuard, Pausable {
    /// @notice Gas a batch item must have before it starts, about twice the costliest
    /// settlement: a batch short of it reverts whole instead of letting the item run out of gas
    /// in its frame and be skipped, so an estimate is exact and a small margin suffices.
    uint256 public constant BATCH_ITEM_GAS = 300_000;

    using SafeERC20 for IERC20;

    uint8 public constant SETTLEMENT_VERSION = 1;
    uint8 public constant KIND_RELEASE = 1;
    uint8 public constant KIND_SEIZE = 2;

    bytes32 public constant SETTLEMENT_TYPEHASH = keccak256(
        "Settlement(uint8 version,uint64 srcChainId,bytes32 srcVault,bytes32 lockId,"
        "bytes32 recipient,uint256 amount,uint8 kind,bytes32 settlementId,uint32 attesterSetIndex)"
    );

    /// @notice The EIP-712 struct of DESIGN §2.4. Field order is the type string's order.
    struct Settlement {
        uint8 version;
        uint64 srcChainId;
        bytes32 srcVault;
        bytes32 lockId;
        bytes32 recipient;
        uint256 amount;
        uint8 kind;
        bytes32 settlementId;
        uint32 attesterSetIndex;
    }

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
    mapping(bytes32 settlementId => bool) private _consumed;
    /// @notice Where seized collateral goes on this chain (insurance fund / venue treasury).
    address public seizeRecipient;

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
    error UnsupportedVersion(uint8 version);
    error WrongSourceChain(uint64 srcChainId);
    error WrongVault(bytes32 srcVault);
    error AlreadyConsumed(bytes32 key);
    error UnknownLock(uint256 nonce);
    error ExceedsLock(uint256 nonce, uint256 remaining, uint256 amount);
    error InvalidKind(uint8 kind);
    error BadRecipient(bytes32 recipient);
    error RecipientNotLockOwner(address recipient, address owner);
    error NoSeizeRecipient();
    error SettleBatchMismatch(uint256 settlements, uint256 signatureSets);
    error BatchOutOfGas(uint256 index, uint256 gasLeft);
    error OnlySelf();

    event SeizeRecipientSet(address indexed recipient);
    /// @notice One item of `settleBatch` that was refused; it left no state behind.
    event SettlementSkipped(uint256 indexed index, bytes32 indexed settlementId, bytes reason);
    event Settled(
        bytes32 indexed settlementId, uint256 indexed nonce, uint8 kind, address recipient, uint256 amount
    );

    constructor(address initialOwner) Ownable(initialOwner) EIP712("Bulkhead", "1") {}

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

    /// @notice Set where kind-2 (seize) settlements pay to. Non-zero.
    function setSeizeRecipient(address recipient) external onlyOwner {
        if (recipient == address(0)) revert ZeroAddress();
        seizeRecipient = recipient;
        emit SeizeRecipientSet(recipient);
    }

    function isSettled(bytes32 settlementId) external view returns (bool) {
        return _consumed[settlementId];
    }

    /// @notice The full EIP-712 digest (domain of this vault) that attesters sign.
    function hashSettlement(Settlement calldata s) public view returns (bytes32) {
        // All fields are static, so abi.encode(struct) is exactly EIP-712 encodeData.
        return _hashTypedDataV4(keccak256(abi.encode(SETTLEMENT_TYPEHASH, s)));
    }

    /// @notice Execute one attested settlement of a lock held here: release to the lock's owner
    /// or seize to `seizeRecipient`. Partial settlements add up to at most the lock's amount.
    function settle(Settlement calldata s, bytes[] calldata sigs) external nonReentrant whenNotPaused {
        _settle(s, sigs);
    }

    /// @notice Execute many attested settlements in one transaction, each verified against the
    /// stored set in its own frame: an item that is refused (already consumed, a bad quorum...)
    /// is skipped with `SettlementSkipped(index, settlementId, revert data)`, leaves no state
    /// behind and never reverts the others.
    /// @return done number of settlements executed.
    function settleBatch(Settlement[] calldata s, bytes[][] calldata sigs)
        external
        nonReentrant
        whenNotPaused
        returns (uint256 done)
    {
        if (s.length != sigs.length) revert SettleBatchMismatch(s.length, sigs.length);
        for (uint256 i = 0; i < s.length; ++i) {
            uint256 left = gasleft();
            if (left < BATCH_ITEM_GAS) revert BatchOutOfGas(i, left);
            try this.settleFromBatch(s[i], sigs[i]) {
                ++done;
            } catch (bytes memory reason) {
                emit SettlementSkipped(i, s[i].settlementId, reason);
            }
        }
    }

    /// @dev One batch item in its own frame (the batch holds the reentrancy lock); only this
    /// contract may call it.
    function settleFromBatch(Settlement calldata s, bytes[] calldata sigs) external {
        if (msg.sender != address(this)) revert OnlySelf();
        _settle(s, sigs);
    }

    function _settle(Settlement calldata s, bytes[] calldata sigs) private {
        if (s.version != SETTLEMENT_VERSION) revert UnsupportedVersion(s.version);
        if (s.srcChainId != block.chainid) revert WrongSourceChain(s.srcChainId);
        if (s.srcVault != bytes32(uint256(uint160(address(this))))) revert WrongVault(s.srcVault);
        if (s.kind != KIND_RELEASE && s.kind != KIND_SEIZE) revert InvalidKind(s.kind);
        if (s.amount == 0) revert ZeroAmount();
        // SECURITY: each settlement id executes at most once (RPL-01).
        if (_consumed[s.settlementId]) revert AlreadyConsumed(s.settlementId);

        uint256 nonce = uint256(s.lockId);
        LockRecord storage lk = _locks[nonce];
        if (lk.amount == 0) revert UnknownLock(nonce);
        uint256 remaining = lk.amount - lk.settled;
        if (s.amount > remaining) revert ExceedsLock(nonce, remaining, s.amount);

        address to;
        if (s.kind == KIND_RELEASE) {
            if (uint256(s.recipient) >> 160 != 0) revert BadRecipient(s.recipient);
            to = address(uint160(uint256(s.recipient)));
            // SECURITY: defence in depth — a release only ever returns funds to who locked them.
            if (to != lk.owner) revert RecipientNotLockOwner(to, lk.owner);
        } else {
            to = seizeRecipient;
            if (to == address(0)) revert NoSeizeRecipient();
        }

        // SECURITY: m distinct members of this vault's stored set over the full digest.
        _verifyQuorum(hashSettlement(s), s.attesterSetIndex, sigs);

        _consumed[s.settlementId] = true;
        lk.settled += s.amount;
        address asset = lk.asset;
        if (s.kind == KIND_RELEASE) {
            releasedTotal[asset] += s.amount;
        } else {
            seizedTotal[asset] += s.amount;
        }
        emit Settled(s.settlementId, nonce, s.kind, to, s.amount);
        IERC20(asset).safeTransfer(to, s.amount);
    }
}
