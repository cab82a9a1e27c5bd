// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IIsolatedMarginVenue
/// @notice What Bulkhead's workers and a partner's integration use of the reference venue
/// (`contracts/IsolatedMarginVenue.sol`, with `VenueCore` and `VenueRiskModule`): credits of
/// attested locks, the way back (settlement requests), trading, liquidation and the views the
/// risk worker snapshots. A partner venue that speaks this interface can reuse the reference
/// adapter (`chains/evm/reference_venue.py`) unchanged.
///
/// Units: USD values `usdE18` (1 USD = 1e18), prices `priceE8` (USD per whole unit), sizes
/// `sizeE18` signed (long > 0), rates ppm (1e6 = 100 %), times in seconds of this chain.
/// A unit test compiles this file with the pinned solc and checks that every function, event
/// and error below has the same signature in the committed IsolatedMarginVenue ABI.
interface IIsolatedMarginVenue {
    enum LockStatus {
        None,
        Queued,
        Credited
    }

    /// @notice The EIP-712 message attesters sign (DESIGN §2.4); field order is the type's.
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

    struct CollateralConfig {
        bytes32 oracleId;
        uint32 haircutPpm;
        uint112 minPriceE8;
        uint112 maxPriceE8;
    }

    // ----- events ---------------------------------------------------------------------------

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
    event QueuedCreditReleased(
        bytes32 indexed lockKey, bytes32 indexed positionKey, uint256 amount, uint256 amount18
    );
    event CreditSkipped(uint256 indexed index, bytes32 indexed lockKey, bytes reason);
    /// @notice The way back: the bridge settles `amount` source units of one lock (kind 1 =
    /// release to its source owner, 2 = seize).
    event SettlementRequested(
        bytes32 indexed settlementId,
        uint64 indexed srcChainId,
        bytes32 srcVault,
        bytes32 indexed lockId,
        bytes32 recipient,
        uint256 amount,
        uint8 kind
    );
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
    /// @param planTick publishTime of the oracle price the liquidation used.
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
    event LiquidationSkipped(uint256 indexed index, bytes32 indexed positionKey, bytes reason);
    event MarketSet(bytes32 indexed market, MarketParams params);
    event BufferSet(bytes32 indexed market, uint256 bufferPpm);
    event CollateralConfigSet(
        uint64 indexed srcChainId, bytes32 indexed srcAsset, CollateralConfig config
    );

    // ----- refusals a caller decodes --------------------------------------------------------

    error AlreadyConsumed(bytes32 key);
    error QuorumNotReached(uint256 have, uint256 need);
    error NotPositionOwner(bytes32 positionKey, address account);
    error InsufficientMargin(int256 equity, uint256 initialMargin);
    error NotLiquidatable(int256 equity, uint256 maintenanceMargin);
    error NoOpenTrade(bytes32 positionKey);
    error InvalidFraction(uint256 fractionPpm);
    error StepTooLarge(uint256 fractionPpm, uint256 stepMaxPpm);
    error LiquidationCooldown(uint256 until);
    error LiquidationPending(bytes32 positionKey, uint256 until);
    error StalePrice(bytes32 oracleId, uint64 publishTime, uint256 maxAge);
    error PriceOutOfBounds(bytes32 oracleId, uint256 priceE8);
    error PriceUnavailable(bytes32 oracleId);
    error CollateralNotPriced(uint64 srcChainId, bytes32 srcAsset);

    // ----- credits and the way back ---------------------------------------------------------

    function credit(LockAttestation calldata a, bytes[] calldata sigs) external;

    function creditBatch(LockAttestation[] calldata atts, bytes[][] calldata sigs)
        external
        returns (uint256 credited);

    function releaseQueued(bytes32 key) external;

    function claimPosition(bytes32 salt) external returns (bytes32 positionKey);

    function requestRelease(
        bytes32 positionKey,
        uint64 srcChainId,
        bytes32 srcVault,
        bytes32 lockId,
        uint256 amount
    ) external returns (bytes32 settlementId);

    // ----- trading and liquidation ----------------------------------------------------------

    function open(bytes32 positionKey, bytes32 market, int256 sizeE18) external;

    function increase(bytes32 positionKey, uint256 deltaE18) external;

    function reduce(bytes32 positionKey, uint256 deltaE18) external;

    function close(bytes32 positionKey) external;

    /// @notice The accountant's pauser role: stop credits on one lane; the owner resumes.
    function pauseLane(uint64 srcChainId, bytes32 srcVault, bytes32 srcAsset) external;

    function lanePaused(bytes32 laneAssetKey) external view returns (bool);

    /// @notice Anyone; the venue re-checks E < MM at its oracle (NotLiquidatable otherwise).
    function liquidate(bytes32 positionKey, uint256 fractionPpm) external;

    /// @notice Many liquidations in one transaction, each re-checked in its own frame; an item
    /// that no longer qualifies is skipped (LiquidationSkipped) and never reverts the others.
    function liquidateBatch(bytes32[] calldata positionKeys, uint256[] calldata fractionsPpm)
        external
        returns (uint256 done);

    // ----- views ----------------------------------------------------------------------------

    function positionKeyOf(address owner_, bytes32 salt) external view returns (bytes32);

    function lockKeyOf(uint64 srcChainId, bytes32 srcVault, bytes32 lockId)
        external
        pure
        returns (bytes32);

    function hashLockAttestation(LockAttestation calldata a) external view returns (bytes32);

    function isConsumed(bytes32 key) external view returns (bool);

    function lockCredit(bytes32 key) external view returns (LockCredit memory);

    function ownerOfPosition(bytes32 positionKey) external view returns (address);

    function collateralOf(bytes32 positionKey, uint64 srcChainId, bytes32 srcAsset)
        external
        view
        returns (uint256);

    function positionLocks(bytes32 positionKey) external view returns (bytes32[] memory);

    function positionOf(bytes32 positionKey)
        external
        view
        returns (
            bytes32 market,
            int256 sizeE18,
            uint256 entryE8,
            int256 realizedUsdE18,
            uint64 lastLiquidation
        );

    function marginOf(bytes32 positionKey)
        external
        view
        returns (
            uint256 collateralUsdE18,
            int256 equityUsdE18,
            uint256 initialUsdE18,
            uint256 maintenanceUsdE18,
            uint256 notionalUsdE18
        );

    function marketOf(bytes32 market)
        external
        view
        returns (MarketParams memory params, uint256 bufferPpm);

    function collateralConfigOf(uint64 srcChainId, bytes32 srcAsset)
        external
        view
        returns (CollateralConfig memory);

    function oracle() external view returns (address);

    function insuranceFund() external view returns (int256);

    function settlementSequence() external view returns (uint256);

    function currentAttesterSetIndex() external view returns (uint32);

    function attesterSet(uint32 index)
        external
        view
        returns (address[] memory members, uint8 threshold, uint64 graceEnd);
}
