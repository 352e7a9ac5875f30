import { notFound } from '../domain/errors';

export const deviceNotFound = () => notFound('DEVICE_NOT_FOUND', 'no such device');
