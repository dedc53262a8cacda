#!/usr/bin/env node
// Compiles the contracts below with the pinned solc-js into Hardhat-style artifacts.
// The artifact is committed so the Python side (tests, demo, ABI_URI) needs no Node at run time;
// the output is deterministic, so rerunning this after an unchanged source gives no diff.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const ROOT = path.resolve(__dirname, '..');
const SOLC_VERSION = '0.8.28';
// contracts/{file}.sol -> contracts/build/{name}.json; `file:name` for a second contract of a file
const CONTRACTS = ['Escrow', 'LogEmitter', 'PairFactory', 'PairFactory:Pair'];

function standardInput(SOURCE_NAME, content) {
  return {
    language: 'Solidity',
    sources: { [SOURCE_NAME]: { content } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      outputSelection: {
        '*': { '*': ['abi', 'evm.bytecode', 'evm.deployedBytecode'] },
      },
    },
  };
}

// A compiler error must stop the build: an old artifact silently kept would test the wrong code.
function compile(SOURCE_NAME, CONTRACT_NAME, input) {
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const diagnostics = output.errors || [];
  for (const d of diagnostics) {
    process.stderr.write(d.formattedMessage || `${d.severity}: ${d.message}\n`);
  }
  if (diagnostics.some((d) => d.severity === 'error')) {
    throw new Error(`solc reported errors compiling ${SOURCE_NAME}`);
  }
  const contract = (output.contracts[SOURCE_NAME] || {})[CONTRACT_NAME];
  if (!contract) {
    throw new Error(`solc produced no ${CONTRACT_NAME} in ${SOURCE_NAME}`);
  }
  return contract;
}

function artifact(SOURCE_NAME, CONTRACT_NAME, contract) {
  return {
    _format: 'hh-sol-artifact-1',
    contractName: CONTRACT_NAME,
    sourceName: SOURCE_NAME,
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
    linkReferences: contract.evm.bytecode.linkReferences || {},
    deployedLinkReferences: contract.evm.deployedBytecode.linkReferences || {},
  };
}

function main() {
  if (!solc.version().startsWith(`${SOLC_VERSION}+`)) {
    throw new Error(`expected solc ${SOLC_VERSION}, found ${solc.version()}: run npm ci`);
  }
  for (const entry of CONTRACTS) {
    const [file, name = file] = entry.split(':');
    const sourceName = `contracts/${file}.sol`;
    const outFile = path.join(__dirname, 'build', `${name}.json`);
    const source = fs.readFileSync(path.join(ROOT, sourceName), 'utf8');
    const compiled = compile(sourceName, name, standardInput(sourceName, source));
    const result = artifact(sourceName, name, compiled);
    fs.mkdirSync(path.dirname(outFile), { recursive: true });
    fs.writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`wrote ${path.relative(ROOT, outFile)} (solc ${solc.version()})\n`);
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(`build failed: ${err.message}\n`);
  process.exit(1);
}
