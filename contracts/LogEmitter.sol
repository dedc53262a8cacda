// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// Emits any log a test asks for, from this contract's address: the raw topics and data that a
/// hostile or unusual contract could produce (invalid UTF-8, non-zero padding, anonymous events,
/// one topic0 with several layouts, huge payloads). Tests pair it with whatever ABI they study.
contract LogEmitter {
    error TooManyTopics(uint256 count);

    /// One log with 0 to 4 topics and the given data.
    function emitLog(bytes32[] calldata topics, bytes calldata data) external {
        _emit(topics, data);
    }

    /// Several logs in one transaction (so in one block, with consecutive log indexes).
    function emitLogs(bytes32[][] calldata topics, bytes[] calldata data) external {
        for (uint256 i = 0; i < topics.length; i++) {
            _emit(topics[i], data[i]);
        }
    }

    function _emit(bytes32[] calldata topics, bytes calldata data) private {
        uint256 n = topics.length;
        if (n > 4) revert TooManyTopics(n);
        bytes memory body = data;
        assembly {
            let ptr := add(body, 32)
            let len := mload(body)
            switch n
            case 0 { log0(ptr, len) }
            case 1 { log1(ptr, len, calldataload(topics.offset)) }
            case 2 {
                log2(ptr, len, calldataload(topics.offset), calldataload(add(topics.offset, 32)))
            }
            case 3 {
                log3(
                    ptr, len,
                    calldataload(topics.offset),
                    calldataload(add(topics.offset, 32)),
                    calldataload(add(topics.offset, 64))
                )
            }
            default {
                log4(
                    ptr, len,
                    calldataload(topics.offset),
                    calldataload(add(topics.offset, 32)),
                    calldataload(add(topics.offset, 64)),
                    calldataload(add(topics.offset, 96))
                )
            }
        }
    }
}
