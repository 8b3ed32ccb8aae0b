// vlmc: the command-line face of the engine (no host, no UI). Each command lives in electron/cli/.

import { OnnxError } from './onnx/ir.js';
import { UsageError } from './cli/args.js';
import { gradcheckCommand, gradcheckUsage } from './cli/gradcheck.js';
import { compareCommand, compareUsage } from './cli/compare.js';
import { exportCommand, exportUsage } from './cli/export.js';
import { runCommand, runUsage } from './cli/run.js';
import { validateCommand, validateUsage } from './cli/validate.js';
import { inspectCommand, inspectUsage } from './cli/inspect.js';
import { trainCommand, trainUsage } from './cli/train.js';
import { evalCommand, evalUsage } from './cli/eval.js';
import { importCommand, importUsage } from './cli/import.js';

type Command = (argv: string[], out: (line: string) => void) => Promise<number>;

const COMMANDS: Record<string, { run: Command; usage: string }> = {
  gradcheck: { run: gradcheckCommand, usage: gradcheckUsage },
  compare: { run: compareCommand, usage: compareUsage },
  export: { run: exportCommand, usage: exportUsage },
  run: { run: runCommand, usage: runUsage },
  validate: { run: validateCommand, usage: validateUsage },
  inspect: { run: inspectCommand, usage: inspectUsage },
  train: { run: trainCommand, usage: trainUsage },
  eval: { run: evalCommand, usage: evalUsage },
  import: { run: importCommand, usage: importUsage },
};

function help(): string {
  return ['usage: vlmc <command> [options]', '', 'commands:', ...Object.values(COMMANDS).map((c) => `  ${c.usage}`)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`vlmc: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  try {
    return await cmd.run(rest, (line) => console.log(line));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`vlmc ${name}: ${e.message}`);
      return 2;
    }
    if (e instanceof OnnxError || (e instanceof Error && e.name.endsWith('Error') && e.message)) {
      console.error(`vlmc ${name}: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
