// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// A contract a factory creates: it logs from its constructor (before the factory's creation
/// event, in the same transaction) and whenever it is poked, so a relayer of the factory's
/// children must relay it from the block of its creation on.
contract Pair {
    event Swap(address indexed sender, uint256 amount, string note);

    constructor(uint256 amount) {
        emit Swap(msg.sender, amount, "created");
    }

    function swap(uint256 amount, string calldata note) external {
        emit Swap(msg.sender, amount, note);
    }
}

/// A Uniswap-style factory: `PairCreated` names each new contract (not indexed), after the
/// child's own first log; `createAndSwap` also makes the child log after the creation event,
/// in the same transaction; `createMany` makes many children in one block.
contract PairFactory {
    event PairCreated(address indexed token0, address indexed token1, address pair, uint256 count);

    uint256 public count;

    function create(address token0, address token1, uint256 amount) public returns (Pair pair) {
        pair = new Pair(amount);
        count += 1;
        emit PairCreated(token0, token1, address(pair), count);
    }

    function createAndSwap(address token0, address token1, uint256 amount) external returns (Pair pair) {
        pair = create(token0, token1, amount);
        pair.swap(amount + 1, "after creation");
    }

    function createMany(uint256 n, uint256 amount) external {
        for (uint256 i = 0; i < n; i++) {
            create(address(uint160(i + 1)), address(uint160(i + 2)), amount + i);
        }
    }
}
