// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Escrow
/// @notice Stands in for the Sepolia settlement escrow whose events the relayer carries to
///         Pub/Sub; tests and the demo drive it on anvil. Amounts are accounting entries only
///         (no ether moves), so any uint256 is a valid amount.
/// @dev The events are shaped to exercise a decoder for real: indexed and non-indexed values,
///      string, bytes, bytes32, uint256, bool, address[], a struct, and an indexed string.
contract Escrow {
    enum Status {
        None,
        Open,
        Disputed,
        Released,
        Refunded
    }

    struct Deal {
        address buyer;
        Status status;
        address seller;
        uint256 amount;
        uint256 funded;
    }

    /// @notice What a party states when it contests an escrow.
    struct Dispute {
        uint8 kind;
        string reason;
        bytes evidence;
        uint64 raisedAt;
    }

    /// @notice One escrow of a `createMany` batch: settlement services open them in bulk.
    struct NewEscrow {
        address seller;
        uint256 amount;
        string memo;
        bytes32 termsHash;
        address[] arbiters;
    }

    event EscrowCreated(
        uint256 indexed escrowId,
        address indexed buyer,
        address indexed seller,
        uint256 amount,
        string memo,
        bytes32 termsHash,
        address[] arbiters
    );
    event EscrowFunded(uint256 indexed escrowId, address indexed funder, uint256 amount, uint256 totalFunded);
    event EscrowReleased(uint256 indexed escrowId, address indexed to, uint256 amount);
    event EscrowRefunded(uint256 indexed escrowId, address indexed to, uint256 amount, string reason);
    event DisputeRaised(uint256 indexed escrowId, address indexed by, Dispute dispute);
    event NoteTagged(uint256 indexed escrowId, string indexed tag, bool urgent, bytes data);

    error UnknownEscrow(uint256 escrowId);
    error InvalidTerms();
    error NotAllowed(uint256 escrowId, address caller);
    error WrongStatus(uint256 escrowId, Status status);
    error BadAmount(uint256 escrowId, uint256 amount, uint256 remaining);
    error LengthMismatch();

    uint256 public nextEscrowId = 1;
    mapping(uint256 => Deal) public deals;
    mapping(uint256 => mapping(address => bool)) public isArbiter;

    /// @notice Opens an escrow with the caller as buyer; ids are sequential from 1.
    function create(
        address seller,
        uint256 amount,
        string calldata memo,
        bytes32 termsHash,
        address[] calldata arbiters
    ) external returns (uint256) {
        return _create(seller, amount, memo, termsHash, arbiters);
    }

    /// @notice Opens several escrows in one transaction; returns the first id.
    function createMany(NewEscrow[] calldata items) external returns (uint256 firstId) {
        firstId = nextEscrowId;
        for (uint256 i = 0; i < items.length; ++i) {
            NewEscrow calldata e = items[i];
            _create(e.seller, e.amount, e.memo, e.termsHash, e.arbiters);
        }
    }

    /// @notice Records a payment into an open escrow; anyone may pay on the buyer's behalf.
    function fund(uint256 escrowId, uint256 amount) external {
        _fund(escrowId, amount);
    }

    /// @notice Records several payments in one transaction.
    function fundMany(uint256[] calldata escrowIds, uint256[] calldata amounts) external {
        if (escrowIds.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < escrowIds.length; ++i) {
            _fund(escrowIds[i], amounts[i]);
        }
    }

    /// @notice Pays what was funded to the seller: the buyer's or an arbiter's decision.
    function release(uint256 escrowId) external {
        Deal storage d = _unsettled(escrowId);
        if (msg.sender != d.buyer && !isArbiter[escrowId][msg.sender]) revert NotAllowed(escrowId, msg.sender);
        d.status = Status.Released;
        emit EscrowReleased(escrowId, d.seller, d.funded);
    }

    /// @notice Returns what was funded to the buyer: the seller's or an arbiter's decision.
    function refund(uint256 escrowId, string calldata reason) external {
        Deal storage d = _unsettled(escrowId);
        if (msg.sender != d.seller && !isArbiter[escrowId][msg.sender]) revert NotAllowed(escrowId, msg.sender);
        d.status = Status.Refunded;
        emit EscrowRefunded(escrowId, d.buyer, d.funded, reason);
    }

    /// @notice Freezes funding until an arbiter (or the parties) settle the escrow.
    function raiseDispute(uint256 escrowId, uint8 kind, string calldata reason, bytes calldata evidence) external {
        Deal storage d = _deal(escrowId);
        if (d.status != Status.Open) revert WrongStatus(escrowId, d.status);
        if (msg.sender != d.buyer && msg.sender != d.seller) revert NotAllowed(escrowId, msg.sender);
        d.status = Status.Disputed;
        emit DisputeRaised(escrowId, msg.sender, Dispute(kind, reason, evidence, uint64(block.timestamp)));
    }

    /// @notice Attaches a searchable label and opaque data to any existing escrow.
    function tagNote(uint256 escrowId, string calldata tag, bool urgent, bytes calldata data) external {
        _deal(escrowId);
        emit NoteTagged(escrowId, tag, urgent, data);
    }

    function _create(
        address seller,
        uint256 amount,
        string calldata memo,
        bytes32 termsHash,
        address[] calldata arbiters
    ) private returns (uint256 escrowId) {
        if (seller == address(0) || seller == msg.sender || amount == 0) revert InvalidTerms();
        escrowId = nextEscrowId++;
        deals[escrowId] = Deal(msg.sender, Status.Open, seller, amount, 0);
        for (uint256 i = 0; i < arbiters.length; ++i) {
            isArbiter[escrowId][arbiters[i]] = true;
        }
        emit EscrowCreated(escrowId, msg.sender, seller, amount, memo, termsHash, arbiters);
    }

    function _fund(uint256 escrowId, uint256 amount) private {
        Deal storage d = _deal(escrowId);
        if (d.status != Status.Open) revert WrongStatus(escrowId, d.status);
        uint256 remaining = d.amount - d.funded;
        if (amount == 0 || amount > remaining) revert BadAmount(escrowId, amount, remaining);
        d.funded += amount;
        emit EscrowFunded(escrowId, msg.sender, amount, d.funded);
    }

    function _unsettled(uint256 escrowId) private view returns (Deal storage d) {
        d = _deal(escrowId);
        if (d.status != Status.Open && d.status != Status.Disputed) revert WrongStatus(escrowId, d.status);
    }

    function _deal(uint256 escrowId) private view returns (Deal storage d) {
        d = deals[escrowId];
        if (d.status == Status.None) revert UnknownEscrow(escrowId);
    }
}
