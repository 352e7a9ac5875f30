export {
  RollcallError,
  loadOrRegister,
  register,
  saveCredentials,
  type Credentials,
  type Registration,
} from './credentials.ts';
export { fileCursor } from './cursor.ts';
export { proof } from './proofs.ts';
export { Robot, type Command, type Refusal, type RobotEvents, type RobotOptions } from './robot.ts';
